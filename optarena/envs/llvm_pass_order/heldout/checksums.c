/* optarena LlvmPassOrder-v0 held-out program (hashing and checksums): Fletcher-16, Fletcher-32,
 * CRC-16 (CCITT-FALSE and ARC, bit by bit and table-driven) and the Internet checksum (RFC 1071).
 *
 * Checks: published values ("abcde", "123456789"); the table-driven CRCs against the bitwise ones
 * on a generated 48 KiB packet stream; every packet's Internet checksum verifies to zero once
 * stored in its header, and an incremental update (RFC 1624) after changing one word equals the
 * checksum computed again. Prints the checksums; exits 1 if a check fails. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define STREAM_SIZE 49152
#define PACKET_SIZE 1536

static uint8_t stream[STREAM_SIZE];
static uint16_t ccitt_table[256];
static uint16_t arc_table[256];
static uint64_t seed = 88172645463325252ull;

static uint32_t draw(void) {
  seed = seed * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(seed >> 33);
}

static uint16_t fletcher16(const uint8_t *p, size_t n) {
  uint32_t lo = 0, hi = 0;
  for (size_t i = 0; i < n; i++) {
    lo = (lo + p[i]) % 255;
    hi = (hi + lo) % 255;
  }
  return (uint16_t)(hi << 8 | lo);
}

/* Fletcher-32 over little-endian 16-bit words (an odd last byte is padded with zero). */
static uint32_t fletcher32(const uint8_t *p, size_t n) {
  uint32_t lo = 0, hi = 0;
  for (size_t i = 0; i < n; i += 2) {
    uint32_t word = p[i] | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
    lo = (lo + word) % 65535;
    hi = (hi + lo) % 65535;
  }
  return hi << 16 | lo;
}

/* CRC-16/CCITT-FALSE: polynomial 0x1021, MSB first, initial value 0xFFFF. */
static uint16_t crc_ccitt_bitwise(const uint8_t *p, size_t n) {
  uint16_t crc = 0xFFFF;
  for (size_t i = 0; i < n; i++) {
    crc ^= (uint16_t)(p[i] << 8);
    for (int k = 0; k < 8; k++)
      crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

/* CRC-16/ARC: polynomial 0x8005 reflected (0xA001), LSB first, initial value 0. */
static uint16_t crc_arc_bitwise(const uint8_t *p, size_t n) {
  uint16_t crc = 0;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++)
      crc = (uint16_t)(crc & 1 ? (crc >> 1) ^ 0xA001 : crc >> 1);
  }
  return crc;
}

static void make_tables(void) {
  for (uint32_t byte = 0; byte < 256; byte++) {
    uint16_t msb = (uint16_t)(byte << 8), lsb = (uint16_t)byte;
    for (int k = 0; k < 8; k++) {
      msb = (uint16_t)(msb & 0x8000 ? (msb << 1) ^ 0x1021 : msb << 1);
      lsb = (uint16_t)(lsb & 1 ? (lsb >> 1) ^ 0xA001 : lsb >> 1);
    }
    ccitt_table[byte] = msb;
    arc_table[byte] = lsb;
  }
}

static uint16_t crc_ccitt_table(const uint8_t *p, size_t n) {
  uint16_t crc = 0xFFFF;
  for (size_t i = 0; i < n; i++)
    crc = (uint16_t)((crc << 8) ^ ccitt_table[((crc >> 8) ^ p[i]) & 0xFF]);
  return crc;
}

static uint16_t crc_arc_table(const uint8_t *p, size_t n) {
  uint16_t crc = 0;
  for (size_t i = 0; i < n; i++)
    crc = (uint16_t)((crc >> 8) ^ arc_table[(crc ^ p[i]) & 0xFF]);
  return crc;
}

/* RFC 1071: the ones' complement of the ones' complement sum of big-endian 16-bit words. */
static uint16_t internet_checksum(const uint8_t *p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2)
    sum += (uint32_t)p[i] << 8 | p[i + 1];
  if (n & 1)
    sum += (uint32_t)p[n - 1] << 8;
  while (sum >> 16)
    sum = (sum & 0xFFFF) + (sum >> 16);
  return (uint16_t)~sum;
}

/* RFC 1624, eqn. 3: the checksum after one word changes from `old` to `new`. */
static uint16_t internet_update(uint16_t check, uint16_t old, uint16_t new_word) {
  uint32_t sum = (uint16_t)~check + (uint32_t)(uint16_t)~old + new_word;
  while (sum >> 16)
    sum = (sum & 0xFFFF) + (sum >> 16);
  return (uint16_t)~sum;
}

static int expect(const char *what, uint32_t got, uint32_t want) {
  if (got == want)
    return 0;
  printf("FAILED %s: %08x, expected %08x\n", what, got, want);
  return 1;
}

int main(void) {
  const uint8_t *abc = (const uint8_t *)"abcde", *digits = (const uint8_t *)"123456789";
  int failures = 0;
  make_tables();
  failures += expect("fletcher16(abcde)", fletcher16(abc, 5), 0xC8F0);
  failures += expect("fletcher32(abcde)", fletcher32(abc, 5), 0xF04FC729u);
  failures += expect("crc ccitt(123456789)", crc_ccitt_bitwise(digits, 9), 0x29B1);
  failures += expect("crc arc(123456789)", crc_arc_bitwise(digits, 9), 0xBB3D);

  for (size_t i = 0; i < STREAM_SIZE; i++)
    stream[i] = (uint8_t)(i % PACKET_SIZE < 20 ? i * 7 : draw());
  failures += expect("ccitt table", crc_ccitt_table(stream, STREAM_SIZE),
                     crc_ccitt_bitwise(stream, STREAM_SIZE));
  failures += expect("arc table", crc_arc_table(stream, STREAM_SIZE),
                     crc_arc_bitwise(stream, STREAM_SIZE));

  uint32_t folded = 0;
  for (size_t at = 0; at < STREAM_SIZE; at += PACKET_SIZE) {
    uint8_t *packet = stream + at;
    packet[10] = packet[11] = 0; /* the checksum field */
    uint16_t check = internet_checksum(packet, PACKET_SIZE);
    packet[10] = (uint8_t)(check >> 8);
    packet[11] = (uint8_t)check;
    failures += expect("internet verify", internet_checksum(packet, PACKET_SIZE), 0);
    size_t word = 2 * (6 + draw() % (PACKET_SIZE / 2 - 6));
    uint16_t old = (uint16_t)(packet[word] << 8 | packet[word + 1]), new_word = (uint16_t)draw();
    packet[word] = (uint8_t)(new_word >> 8);
    packet[word + 1] = (uint8_t)new_word;
    uint16_t updated = internet_update(check, old, new_word);
    packet[10] = packet[11] = 0;
    failures += expect("internet update", updated, internet_checksum(packet, PACKET_SIZE));
    folded = folded * 31 + updated;
  }

  printf("fletcher16 %04x fletcher32 %08x ccitt %04x arc %04x internet %08x\n",
         fletcher16(stream, STREAM_SIZE), fletcher32(stream, STREAM_SIZE),
         crc_ccitt_table(stream, STREAM_SIZE), crc_arc_table(stream, STREAM_SIZE), folded);
  printf("checksums: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
