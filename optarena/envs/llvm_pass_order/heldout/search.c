/* optarena LlvmPassOrder-v0 held-out program (sorting and searching): binary search (lower bound),
 * interpolation search, exponential search and an open-addressing hash table (linear probing,
 * deletion by backward shift) over a generated sorted array of distinct keys.
 *
 * Checks: for 20,000 queries (half of them present) the three searches on the array find the
 * same position, which a bitmap of the keys confirms; the hash table holds exactly the keys
 * that remain after deleting every third one. Prints the hit counts and a checksum; exits 1 if
 * a check fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define KEYS 8192
#define QUERIES 20000
#define TABLE_BITS 14
#define TABLE_SIZE (1 << TABLE_BITS)
#define EMPTY UINT32_MAX
#define UNIVERSE (1u << 21) /* above the largest key: KEYS * 200 */

static uint32_t keys[KEYS];
static uint32_t table[TABLE_SIZE];
static uint8_t present[UNIVERSE / 8];
static uint32_t seed = 2718281u;

static uint32_t draw(void) {
  seed = seed * 1103515245u + 12345u;
  return (seed >> 4) & 0x0FFFFFFF;
}

/* The first index in [lo, hi) whose key is >= target (hi if none). */
static int lower_bound(uint32_t target, int lo, int hi) {
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    if (keys[mid] < target)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The index of target, or -1: probes where the key would be if keys were evenly spread. */
static int interpolation_search(uint32_t target) {
  int lo = 0, hi = KEYS - 1;
  while (lo <= hi && target >= keys[lo] && target <= keys[hi]) {
    if (keys[hi] == keys[lo])
      return keys[lo] == target ? lo : -1;
    uint64_t span = (uint64_t)(target - keys[lo]) * (uint64_t)(hi - lo);
    int probe = lo + (int)(span / (keys[hi] - keys[lo]));
    if (keys[probe] == target)
      return probe;
    if (keys[probe] < target)
      lo = probe + 1;
    else
      hi = probe - 1;
  }
  return -1;
}

/* The index of target, or -1: doubles a bound from the front, then bisects below it. */
static int exponential_search(uint32_t target) {
  int bound = 1;
  while (bound < KEYS && keys[bound] < target)
    bound *= 2;
  int at = lower_bound(target, bound / 2, bound < KEYS ? bound + 1 : KEYS);
  return at < KEYS && keys[at] == target ? at : -1;
}

static uint32_t slot_of(uint32_t key) { return (key * 2654435769u) >> (32 - TABLE_BITS); }

static void table_insert(uint32_t key) {
  uint32_t s = slot_of(key);
  while (table[s] != EMPTY && table[s] != key)
    s = (s + 1) & (TABLE_SIZE - 1);
  table[s] = key;
}

static int table_find(uint32_t key) {
  for (uint32_t s = slot_of(key); table[s] != EMPTY; s = (s + 1) & (TABLE_SIZE - 1))
    if (table[s] == key)
      return (int)s;
  return -1;
}

/* Deletes by moving later entries of the probe run back, so that no tombstone is needed. */
static void table_delete(uint32_t key) {
  int found = table_find(key);
  if (found < 0)
    return;
  uint32_t hole = (uint32_t)found, s = hole;
  for (;;) {
    s = (s + 1) & (TABLE_SIZE - 1);
    if (table[s] == EMPTY)
      break;
    uint32_t home = slot_of(table[s]);
    /* the entry may fill the hole unless its home lies cyclically in (hole, s] */
    int stays = hole <= s ? (hole < home && home <= s) : (hole < home || home <= s);
    if (!stays) {
      table[hole] = table[s];
      hole = s;
    }
  }
  table[hole] = EMPTY;
}

int main(void) {
  int failures = 0;
  uint32_t key = 0;
  for (int i = 0; i < KEYS; i++) {
    key += 1 + draw() % (i % 512 < 256 ? 40 : 200); /* uneven gaps */
    keys[i] = key;
    present[key / 8] |= (uint8_t)(1u << (key % 8));
  }
  memset(table, 0xFF, sizeof table);
  for (int i = 0; i < KEYS; i++)
    table_insert(keys[i]);
  for (int i = 0; i < KEYS; i += 3)
    table_delete(keys[i]);

  int hits = 0, table_hits = 0;
  uint32_t checksum = 0;
  for (int q = 0; q < QUERIES; q++) {
    uint32_t target = q % 2 ? keys[draw() % KEYS] : draw() % (key + 1000);
    int bound = lower_bound(target, 0, KEYS);
    int at = bound < KEYS && keys[bound] == target ? bound : -1;
    int expected = target < UNIVERSE && (present[target / 8] >> (target % 8) & 1);
    if ((at >= 0) != expected || interpolation_search(target) != at ||
        exponential_search(target) != at) {
      printf("FAILED query %u: positions disagree\n", target);
      failures++;
      break;
    }
    int kept = at >= 0 && at % 3 != 0;
    if ((table_find(target) >= 0) != kept) {
      printf("FAILED hash table on %u\n", target);
      failures++;
      break;
    }
    hits += at >= 0;
    table_hits += kept;
    checksum = checksum * 131u + (uint32_t)bound;
  }
  printf("search hits %d table hits %d checksum %08x\n", hits, table_hits, checksum);
  printf("search: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
