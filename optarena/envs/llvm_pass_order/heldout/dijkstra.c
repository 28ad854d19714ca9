/* optarena LlvmPassOrder-v0 held-out program (graph): Dijkstra's shortest paths with an indexed
 * binary heap (decrease-key), on a generated directed graph in compressed sparse row form.
 *
 * Checks, for several sources: the distances equal Bellman-Ford's (rounds until nothing
 * changes); they are an optimality certificate (no edge can shorten a distance, and every
 * reached vertex but the source has a tight incoming edge on its recorded shortest-path tree);
 * following the tree from any vertex reaches the source. Prints the sum of the distances and a
 * checksum; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>

#define VERTICES 2000
#define EDGES 12000
#define SOURCES 4
#define INF INT32_MAX

static int edge_from[EDGES], edge_to[EDGES], edge_weight[EDGES];
static int row_start[VERTICES + 1], column[EDGES], weight[EDGES];
static int32_t dist[VERTICES], check_dist[VERTICES];
static int tree_parent[VERTICES];
static int heap[VERTICES], heap_index[VERTICES], heap_size;

static void build_csr(void) {
  for (int e = 0; e < EDGES; e++)
    row_start[edge_from[e] + 1]++;
  for (int v = 0; v < VERTICES; v++)
    row_start[v + 1] += row_start[v];
  int fill[VERTICES];
  for (int v = 0; v < VERTICES; v++)
    fill[v] = row_start[v];
  for (int e = 0; e < EDGES; e++) {
    int slot = fill[edge_from[e]]++;
    column[slot] = edge_to[e];
    weight[slot] = edge_weight[e];
  }
}

static void heap_swap(int a, int b) {
  int va = heap[a], vb = heap[b];
  heap[a] = vb;
  heap[b] = va;
  heap_index[vb] = a;
  heap_index[va] = b;
}

static void heap_up(int at) {
  while (at > 0 && dist[heap[(at - 1) / 2]] > dist[heap[at]]) {
    heap_swap(at, (at - 1) / 2);
    at = (at - 1) / 2;
  }
}

static int heap_pop(void) {
  int top = heap[0];
  heap_swap(0, --heap_size);
  heap_index[top] = -1;
  for (int at = 0;;) {
    int smallest = at, left = 2 * at + 1, right = left + 1;
    if (left < heap_size && dist[heap[left]] < dist[heap[smallest]])
      smallest = left;
    if (right < heap_size && dist[heap[right]] < dist[heap[smallest]])
      smallest = right;
    if (smallest == at)
      break;
    heap_swap(at, smallest);
    at = smallest;
  }
  return top;
}

static void dijkstra(int source) {
  for (int v = 0; v < VERTICES; v++) {
    dist[v] = INF;
    tree_parent[v] = -1;
    heap_index[v] = -1;
  }
  dist[source] = 0;
  heap[0] = source;
  heap_index[source] = 0;
  heap_size = 1;
  while (heap_size > 0) {
    int u = heap_pop();
    for (int k = row_start[u]; k < row_start[u + 1]; k++) {
      int v = column[k];
      int32_t through = dist[u] + weight[k];
      if (through >= dist[v])
        continue;
      int fresh = dist[v] == INF;
      dist[v] = through;
      tree_parent[v] = u;
      if (fresh) {
        heap[heap_size] = v;
        heap_index[v] = heap_size++;
      }
      heap_up(heap_index[v]);
    }
  }
}

static void bellman_ford(int source) {
  for (int v = 0; v < VERTICES; v++)
    check_dist[v] = INF;
  check_dist[source] = 0;
  for (int round = 0, changed = 1; changed && round < VERTICES; round++) {
    changed = 0;
    for (int e = 0; e < EDGES; e++) {
      int u = edge_from[e], v = edge_to[e];
      if (check_dist[u] != INF && check_dist[u] + edge_weight[e] < check_dist[v]) {
        check_dist[v] = check_dist[u] + edge_weight[e];
        changed = 1;
      }
    }
  }
}

static int certificate_holds(int source) {
  for (int u = 0; u < VERTICES; u++) {
    if (dist[u] == INF)
      continue;
    int tight = u == source;
    for (int k = row_start[u]; k < row_start[u + 1]; k++)
      if (dist[u] + weight[k] < dist[column[k]])
        return 0;
    int p = tree_parent[u];
    for (int k = p < 0 ? 0 : row_start[p]; p >= 0 && k < row_start[p + 1] && !tight; k++)
      tight = column[k] == u && dist[p] + weight[k] == dist[u];
    int steps = 0, v = u;
    while (v != source && v >= 0 && steps++ < VERTICES)
      v = tree_parent[v];
    if (!tight || v != source)
      return 0;
  }
  return 1;
}

int main(void) {
  uint32_t x = 99991u;
  for (int e = 0; e < EDGES; e++) {
    x = x * 1664525u + 1013904223u;
    int from = (int)((x >> 8) % VERTICES);
    x = x * 1664525u + 1013904223u;
    int hop = 1 + (int)((x >> 8) % 60); /* mostly local edges, a few long ones */
    edge_from[e] = from;
    edge_to[e] = e % 10 == 0 ? (int)((x >> 12) % VERTICES) : (from + hop) % VERTICES;
    edge_weight[e] = 1 + (int)((x >> 20) % 100);
  }
  build_csr();

  int failures = 0;
  int64_t total = 0;
  uint32_t checksum = 0;
  for (int s = 0; s < SOURCES; s++) {
    int source = s * (VERTICES / SOURCES) + 7;
    dijkstra(source);
    bellman_ford(source);
    int reached = 0;
    for (int v = 0; v < VERTICES; v++) {
      if (dist[v] != check_dist[v]) {
        printf("FAILED source %d vertex %d: %d, Bellman-Ford %d\n", source, v, dist[v],
               check_dist[v]);
        failures++;
        break;
      }
      if (dist[v] != INF) {
        reached++;
        total += dist[v];
        checksum = checksum * 31u + (uint32_t)dist[v];
      }
    }
    if (!certificate_holds(source)) {
      printf("FAILED certificate for source %d\n", source);
      failures++;
    }
    printf("source %d reaches %d vertices\n", source, reached);
  }
  printf("dijkstra total %lld checksum %08x\n", (long long)total, checksum);
  printf("dijkstra: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
