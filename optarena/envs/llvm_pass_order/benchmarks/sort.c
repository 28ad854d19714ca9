/* optarena LlvmPassOrder-v0 suite: quicksort and binary search over generated keys. */
#include <stdio.h>

#define N 60000

static int keys[N];

static void swap(int *x, int *y) {
  int t = *x;
  *x = *y;
  *y = t;
}

static void quicksort(int *v, int lo, int hi) {
  while (lo < hi) {
    int pivot = v[(lo + hi) / 2], i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) swap(&v[i++], &v[j--]);
    }
    if (j - lo < hi - i) {
      quicksort(v, lo, j);
      lo = i;
    } else {
      quicksort(v, i, hi);
      hi = j;
    }
  }
}

static int find(const int *v, int n, int key) {
  int lo = 0, hi = n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    if (v[mid] == key) return mid;
    if (v[mid] < key) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

int main(void) {
  unsigned x = 2463534242u;
  for (int i = 0; i < N; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    keys[i] = (int)(x % 1000000u);
  }
  quicksort(keys, 0, N - 1);
  long found = 0;
  for (int k = 0; k < 1000000; k += 7)
    found += find(keys, N, k) >= 0;
  printf("%d %d %ld\n", keys[0], keys[N - 1], found);
  return 0;
}
