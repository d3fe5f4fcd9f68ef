/*
 * Writes SIZE pseudo-random bytes derived from SEED to OUT. The output depends only on the two
 * numbers, and a xorshift generator makes it incompressible, so a cache cannot shrink it on the
 * wire or at rest and a test really moves every byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BUFFER_BYTES (1 << 20)

static uint64_t next_word(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * UINT64_C(2685821657736338717);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s SEED SIZE OUT\n", argv[0]);
    return 2;
  }
  uint64_t state = strtoull(argv[1], NULL, 10) | 1;
  unsigned long long remaining = strtoull(argv[2], NULL, 10);
  FILE *out = fopen(argv[3], "wb");
  if (out == NULL) {
    perror(argv[3]);
    return 1;
  }

  static unsigned char buffer[BUFFER_BYTES];
  while (remaining > 0) {
    size_t chunk = remaining < BUFFER_BYTES ? (size_t)remaining : BUFFER_BYTES;
    for (size_t i = 0; i < chunk; i += 8) {
      uint64_t word = next_word(&state);
      for (size_t b = 0; b < 8 && i + b < chunk; b++) {
        buffer[i + b] = (unsigned char)(word >> (8 * b));
      }
    }
    if (fwrite(buffer, 1, chunk, out) != chunk) {
      perror(argv[3]);
      return 1;
    }
    remaining -= chunk;
  }
  return fclose(out) == 0 ? 0 : 1;
}
