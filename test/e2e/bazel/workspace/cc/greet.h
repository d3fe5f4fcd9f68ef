#ifndef TESSERA_E2E_GREET_H_
#define TESSERA_E2E_GREET_H_

#include <string>

// Builds the line the hello binary prints, so the test can check a library was linked in.
std::string Greeting(const std::string& name);

#endif  // TESSERA_E2E_GREET_H_
