#include <iostream>

#include "cc/greet.h"

int main(int argc, char** argv) {
  std::cout << Greeting(argc > 1 ? argv[1] : "bazel") << std::endl;
  return 0;
}
