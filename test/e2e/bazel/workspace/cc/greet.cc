#include "cc/greet.h"

std::string Greeting(const std::string& name) { return "hello, " + name + " from tessera"; }
