/* optarena LlvmPassOrder-v0 suite: table-driven CRC-32 of a generated buffer, prints it. */
#include <stdint.h>
#include <stdio.h>

#define SIZE (1 << 18)

static uint8_t data[SIZE];
static uint32_t table[256];

static void make_table(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
}

static uint32_t crc32(const uint8_t *buf, int len) {
  uint32_t c = 0xFFFFFFFFu;
  for (int i = 0; i < len; i++)
    c = table[(c ^ buf[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

int main(void) {
  uint32_t x = 12345;
  for (int i = 0; i < SIZE; i++) {
    x = x * 1103515245u + 12345u;
    data[i] = (uint8_t)(x >> 16);
  }
  make_table();
  uint32_t crc = 0;
  for (int r = 0; r < 48; r++)
    crc ^= crc32(data, SIZE - r);
  printf("%08x\n", crc);
  return 0;
}
