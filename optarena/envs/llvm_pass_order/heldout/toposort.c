/* optarena LlvmPassOrder-v0 held-out program (graph): topological sorting of a generated task
 * graph by Kahn's algorithm and by iterative depth-first search, the critical path (longest
 * path with task durations) and cycle detection.
 *
 * Checks: both orders are permutations that put every edge's tail before its head; the
 * critical path computed along either order is the same; after adding one back edge, both
 * algorithms report a cycle. Prints the critical path length and a checksum of the Kahn order;
 * exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TASKS 3000
#define DEPENDENCIES 15000

static int tail_of[DEPENDENCIES + 1], head_of[DEPENDENCIES + 1];
static int hidden_order[TASKS], duration[TASKS];
static int out_start[TASKS + 1], out_target[DEPENDENCIES + 1];
static int indegree[TASKS], kahn[TASKS], dfs[TASKS], position[TASKS];
static int stack_vertex[TASKS], stack_arc[TASKS];
static uint8_t state[TASKS]; /* DFS: 0 new, 1 on the stack, 2 finished */
static int64_t finish_time[TASKS];

static void build(int edges) {
  memset(out_start, 0, sizeof out_start);
  for (int e = 0; e < edges; e++)
    out_start[tail_of[e] + 1]++;
  for (int v = 0; v < TASKS; v++)
    out_start[v + 1] += out_start[v];
  int fill[TASKS];
  memcpy(fill, out_start, sizeof fill);
  for (int e = 0; e < edges; e++)
    out_target[fill[tail_of[e]]++] = head_of[e];
}

/* Kahn's algorithm; returns how many tasks it ordered (fewer than TASKS: a cycle). */
static int kahn_sort(void) {
  int head = 0, tail = 0;
  memset(indegree, 0, sizeof indegree);
  for (int k = 0; k < out_start[TASKS]; k++)
    indegree[out_target[k]]++;
  for (int v = 0; v < TASKS; v++)
    if (indegree[v] == 0)
      kahn[tail++] = v;
  while (head < tail) {
    int u = kahn[head++];
    for (int k = out_start[u]; k < out_start[u + 1]; k++)
      if (--indegree[out_target[k]] == 0)
        kahn[tail++] = out_target[k];
  }
  return tail;
}

/* Reverse postorder of an iterative DFS; returns 0 if it meets a back edge (a cycle). */
static int dfs_sort(void) {
  int written = TASKS;
  memset(state, 0, sizeof state);
  for (int root = 0; root < TASKS; root++) {
    if (state[root])
      continue;
    int depth = 0;
    stack_vertex[0] = root;
    stack_arc[0] = out_start[root];
    state[root] = 1;
    while (depth >= 0) {
      int u = stack_vertex[depth];
      if (stack_arc[depth] == out_start[u + 1]) {
        state[u] = 2;
        dfs[--written] = u;
        depth--;
        continue;
      }
      int w = out_target[stack_arc[depth]++];
      if (state[w] == 1)
        return 0;
      if (state[w] == 0) {
        state[w] = 1;
        depth++;
        stack_vertex[depth] = w;
        stack_arc[depth] = out_start[w];
      }
    }
  }
  return 1;
}

static int respects_edges(const int *order, int edges) {
  memset(position, -1, sizeof position);
  for (int i = 0; i < TASKS; i++) {
    if (order[i] < 0 || order[i] >= TASKS || position[order[i]] >= 0)
      return 0; /* not a permutation */
    position[order[i]] = i;
  }
  for (int e = 0; e < edges; e++)
    if (position[tail_of[e]] >= position[head_of[e]])
      return 0;
  return 1;
}

/* The latest finish time over all tasks, each starting when its predecessors finish. */
static int64_t critical_path(const int *order) {
  int64_t longest = 0;
  for (int v = 0; v < TASKS; v++)
    finish_time[v] = 0;
  for (int i = 0; i < TASKS; i++) {
    int u = order[i];
    finish_time[u] += duration[u];
    if (finish_time[u] > longest)
      longest = finish_time[u];
    for (int k = out_start[u]; k < out_start[u + 1]; k++)
      if (finish_time[out_target[k]] < finish_time[u])
        finish_time[out_target[k]] = finish_time[u];
  }
  return longest;
}

int main(void) {
  uint32_t x = 606u;
  for (int v = 0; v < TASKS; v++)
    hidden_order[v] = v;
  for (int v = TASKS - 1; v > 0; v--) { /* Fisher-Yates: tasks are numbered at random */
    x = x * 1103515245u + 12345u;
    int j = (int)((x >> 8) % (uint32_t)(v + 1)), t = hidden_order[v];
    hidden_order[v] = hidden_order[j];
    hidden_order[j] = t;
    duration[v] = 1 + (int)((x >> 3) % 50);
  }
  duration[0] = 7;
  for (int e = 0; e < DEPENDENCIES; e++) {
    x = x * 1103515245u + 12345u;
    int a = (int)((x >> 8) % (TASKS - 1)), span = 1 + (int)((x >> 20) % 40);
    int b = a + span < TASKS ? a + span : TASKS - 1;
    tail_of[e] = hidden_order[a];
    head_of[e] = hidden_order[b];
  }
  build(DEPENDENCIES);
  int failures = 0;
  int ordered = kahn_sort();
  if (ordered != TASKS || !respects_edges(kahn, DEPENDENCIES)) {
    printf("FAILED Kahn order (%d tasks)\n", ordered);
    failures++;
  }
  if (!dfs_sort() || !respects_edges(dfs, DEPENDENCIES)) {
    printf("FAILED DFS order\n");
    failures++;
  }
  int64_t longest = critical_path(kahn);
  if (critical_path(dfs) != longest) {
    printf("FAILED critical paths differ\n");
    failures++;
  }
  uint32_t checksum = 0;
  for (int i = 0; i < TASKS; i++)
    checksum = checksum * 37u + (uint32_t)kahn[i];

  tail_of[DEPENDENCIES] = head_of[DEPENDENCIES - 1]; /* close a cycle */
  head_of[DEPENDENCIES] = tail_of[DEPENDENCIES - 1];
  build(DEPENDENCIES + 1);
  if (kahn_sort() == TASKS || dfs_sort()) {
    printf("FAILED cycle not detected\n");
    failures++;
  }
  printf("toposort critical path %lld checksum %08x\n", (long long)longest, checksum);
  printf("toposort: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
