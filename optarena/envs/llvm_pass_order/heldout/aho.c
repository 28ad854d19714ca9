/* optarena LlvmPassOrder-v0 held-out program (string search): Aho-Corasick multi-pattern
 * matching: a trie of 64 generated keywords, failure links by breadth-first search, the complete
 * transition table (a DFA over 27 symbols) and output links to the keywords that end at a state.
 *
 * Checks: the count of every keyword in a generated 24,000-character text equals a naive
 * count; the first occurrence of each keyword equals strstr's; every state's failure link is
 * the longest proper suffix of its string that is in the trie (checked directly). Prints the
 * total count and a checksum; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define KEYWORDS 64
#define MAX_KEYWORD 9
#define MAX_STATES (KEYWORDS * MAX_KEYWORD + 1)
#define SYMBOLS 27 /* a-z and everything else */
#define TEXT_SIZE 24000

static char keyword[KEYWORDS][MAX_KEYWORD + 1];
static int next_state[MAX_STATES][SYMBOLS];
static int fail_link[MAX_STATES], output_link[MAX_STATES], depth[MAX_STATES];
static int keyword_at[MAX_STATES]; /* the keyword ending here, or -1 */
static char state_string[MAX_STATES][MAX_KEYWORD + 1];
static int queue[MAX_STATES], states = 1;
static char text[TEXT_SIZE + 1];
static int count[KEYWORDS], first_at[KEYWORDS];

static int symbol(char c) { return c >= 'a' && c <= 'z' ? c - 'a' : 26; }

static void add_keyword(int k) {
  int s = 0;
  for (const char *c = keyword[k]; *c; c++) {
    int a = symbol(*c);
    if (!next_state[s][a]) {
      next_state[s][a] = states;
      depth[states] = depth[s] + 1;
      memcpy(state_string[states], state_string[s], (size_t)depth[s]);
      state_string[states][depth[s]] = *c;
      states++;
    }
    s = next_state[s][a];
  }
  if (keyword_at[s] < 0) /* a keyword drawn twice is counted once */
    keyword_at[s] = k;
}

/* Failure links, output links and the full transition table, level by level. */
static void build_automaton(void) {
  int head = 0, tail = 0;
  for (int a = 0; a < SYMBOLS; a++)
    if (next_state[0][a])
      queue[tail++] = next_state[0][a];
  while (head < tail) {
    int s = queue[head++];
    int f = fail_link[s];
    output_link[s] = keyword_at[f] >= 0 ? f : output_link[f];
    for (int a = 0; a < SYMBOLS; a++) {
      int t = next_state[s][a];
      if (t) {
        fail_link[t] = next_state[f][a];
        queue[tail++] = t;
      } else {
        next_state[s][a] = next_state[f][a];
      }
    }
  }
}

static int find_state(const char *str, int length) {
  int s = 0;
  for (int i = 0; i < length; i++) { /* trie edges only: a deeper state than the one before */
    int t = next_state[s][symbol(str[i])];
    if (depth[t] != depth[s] + 1)
      return -1;
    s = t;
  }
  return s;
}

static int failure_links_hold(void) {
  for (int s = 1; s < states; s++) {
    int expected = 0;
    for (int cut = 1; cut < depth[s] && !expected; cut++)
      if (find_state(state_string[s] + cut, depth[s] - cut) >= 0)
        expected = find_state(state_string[s] + cut, depth[s] - cut);
    if (fail_link[s] != expected)
      return 0;
  }
  return 1;
}

int main(void) {
  uint32_t x = 1357911u;
  memset(keyword_at, -1, sizeof keyword_at);
  for (int k = 0; k < KEYWORDS; k++) {
    x = x * 1664525u + 1013904223u;
    int length = 1 + (int)((x >> 10) % MAX_KEYWORD);
    for (int i = 0; i < length; i++) {
      x = x * 1664525u + 1013904223u;
      keyword[k][i] = "abcdeabcab"[(x >> 12) % 10]; /* small alphabet: shared prefixes */
    }
    add_keyword(k);
  }
  build_automaton();
  for (int i = 0; i < TEXT_SIZE; i++) {
    x = x * 1664525u + 1013904223u;
    text[i] = (x >> 16) % 23 == 0 ? ' ' : "abcdeabcabf"[(x >> 12) % 11];
  }

  memset(first_at, -1, sizeof first_at);
  int total = 0;
  for (int i = 0, s = 0; i < TEXT_SIZE; i++) {
    s = next_state[s][symbol(text[i])];
    for (int o = keyword_at[s] >= 0 ? s : output_link[s]; o > 0; o = output_link[o]) {
      int k = keyword_at[o];
      if (first_at[k] < 0)
        first_at[k] = i - depth[o] + 1;
      count[k]++;
      total++;
    }
  }

  int failures = failure_links_hold() ? 0 : 1;
  uint32_t checksum = (uint32_t)states;
  for (int k = 0; k < KEYWORDS; k++) {
    int s = find_state(keyword[k], (int)strlen(keyword[k]));
    int owner = keyword_at[s], naive = 0, length = (int)strlen(keyword[k]);
    for (int i = 0; i + length <= TEXT_SIZE; i++)
      naive += memcmp(text + i, keyword[k], (size_t)length) == 0;
    const char *first = strstr(text, keyword[k]);
    int want_first = first ? (int)(first - text) : -1;
    if (naive != count[owner] || want_first != first_at[owner]) {
      printf("FAILED keyword %s: %d found, %d by naive search\n", keyword[k], count[owner], naive);
      failures++;
    }
    checksum = checksum * 31u + (uint32_t)naive + (uint32_t)(want_first + 1) * 7u;
  }
  printf("aho states %d matches %d checksum %08x\n", states, total, checksum);
  printf("aho: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
