/* optarena LlvmPassOrder-v0 held-out program (graph): connected components of a generated sparse
 * undirected graph, by breadth-first search over an adjacency list and by union-find (union by
 * size, path halving) over the edge list; BFS levels, and which components are bipartite (no
 * edge joins two vertices of one level).
 *
 * Checks: both methods give the same partition (a one-to-one map between BFS labels and
 * union-find roots, and the same component sizes); every edge joins vertices whose BFS levels
 * differ by at most one. Prints the component count, the largest size, the bipartite count and
 * a checksum; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define VERTICES 5000
#define EDGES 4600

static int ends[EDGES][2];
static int first_arc[VERTICES + 1], arc_target[2 * EDGES];
static int label[VERTICES], level[VERTICES], queue[VERTICES];
static int uf_parent[VERTICES], uf_size[VERTICES];
static int root_of_label[VERTICES], label_of_root[VERTICES], size_by_label[VERTICES];
static uint8_t odd_cycle[VERTICES];

static void build_adjacency(void) {
  memset(first_arc, 0, sizeof first_arc);
  for (int e = 0; e < EDGES; e++) {
    first_arc[ends[e][0] + 1]++;
    first_arc[ends[e][1] + 1]++;
  }
  for (int v = 0; v < VERTICES; v++)
    first_arc[v + 1] += first_arc[v];
  int next[VERTICES];
  memcpy(next, first_arc, sizeof next);
  for (int e = 0; e < EDGES; e++) {
    arc_target[next[ends[e][0]]++] = ends[e][1];
    arc_target[next[ends[e][1]]++] = ends[e][0];
  }
}

/* Labels components 0, 1, ... in order of their smallest vertex; returns how many. */
static int bfs_components(void) {
  int count = 0;
  for (int v = 0; v < VERTICES; v++)
    label[v] = -1;
  for (int start = 0; start < VERTICES; start++) {
    if (label[start] >= 0)
      continue;
    int head = 0, tail = 0;
    queue[tail++] = start;
    label[start] = count;
    level[start] = 0;
    size_by_label[count] = 0;
    while (head < tail) {
      int u = queue[head++];
      size_by_label[count]++;
      for (int a = first_arc[u]; a < first_arc[u + 1]; a++) {
        int w = arc_target[a];
        if (label[w] < 0) {
          label[w] = count;
          level[w] = level[u] + 1;
          queue[tail++] = w;
        }
      }
    }
    count++;
  }
  return count;
}

static int find(int v) {
  while (uf_parent[v] != v) {
    uf_parent[v] = uf_parent[uf_parent[v]];
    v = uf_parent[v];
  }
  return v;
}

static void unite(int a, int b) {
  a = find(a);
  b = find(b);
  if (a == b)
    return;
  if (uf_size[a] < uf_size[b]) {
    int t = a;
    a = b;
    b = t;
  }
  uf_parent[b] = a;
  uf_size[a] += uf_size[b];
}

int main(void) {
  uint32_t x = 0xBEEFu;
  for (int e = 0; e < EDGES; e++) {
    for (int k = 0; k < 2; k++) {
      x ^= x << 7;
      x ^= x >> 9;
      ends[e][k] = (int)(x % VERTICES);
    }
    if (e % 3 == 0) /* some chains of neighbours: long components */
      ends[e][1] = (ends[e][0] + 1) % VERTICES;
  }
  build_adjacency();
  int count = bfs_components();

  for (int v = 0; v < VERTICES; v++) {
    uf_parent[v] = v;
    uf_size[v] = 1;
    label_of_root[v] = root_of_label[v] = -1;
  }
  for (int e = 0; e < EDGES; e++)
    unite(ends[e][0], ends[e][1]);

  int failures = 0, roots = 0, largest = 0;
  for (int v = 0; v < VERTICES; v++) {
    int r = find(v), l = label[v];
    if (root_of_label[l] < 0 && label_of_root[r] < 0) {
      root_of_label[l] = r;
      label_of_root[r] = l;
      roots++;
      if (uf_size[r] != size_by_label[l])
        failures++;
      if (uf_size[r] > largest)
        largest = uf_size[r];
    } else if (root_of_label[l] != r || label_of_root[r] != l) {
      failures++;
    }
  }
  if (roots != count || failures) {
    printf("FAILED partitions differ (%d components, %d roots)\n", count, roots);
    failures++;
  }

  for (int e = 0; e < EDGES; e++) {
    int a = ends[e][0], b = ends[e][1], gap = level[a] - level[b];
    if (label[a] != label[b] || gap > 1 || gap < -1) {
      printf("FAILED edge %d joins levels %d and %d\n", e, level[a], level[b]);
      failures++;
      break;
    }
    if (gap == 0) /* same parity across an edge: an odd cycle */
      odd_cycle[label[a]] = 1;
  }
  int bipartite = 0;
  uint32_t checksum = 0;
  for (int l = 0; l < count; l++) {
    bipartite += !odd_cycle[l];
    checksum = checksum * 33u + (uint32_t)size_by_label[l] * 2u + odd_cycle[l];
  }
  printf("components %d largest %d bipartite %d checksum %08x\n", count, largest, bipartite,
         checksum);
  printf("components: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
