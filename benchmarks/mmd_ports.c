/* Throughput of the 512-bit operations that bound mmd_imq on this CPU (one core).
   gcc -O2 -mavx512f benchmarks/mmd_ports.c -o /tmp/mmd_ports && /tmp/mmd_ports
   Prints zmm FMAs per ns (8 independent chains: throughput, not latency) and the cost of a zmm
   division (the rational form needs one per 16 float pairs, the direct form S). */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}
int main(void) {
  const long N = 100000000;
  __m512 one = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(1.0000001f);
  __m512 f0 = one, f1 = one, f2 = one, f3 = one, f4 = one, f5 = one, f6 = one, f7 = one;
  double t = now();
  for (long i = 0; i < N; i++) {
    f0 = _mm512_fmadd_ps(f0, b, one); f1 = _mm512_fmadd_ps(f1, b, one); f2 = _mm512_fmadd_ps(f2, b, one);
    f3 = _mm512_fmadd_ps(f3, b, one); f4 = _mm512_fmadd_ps(f4, b, one); f5 = _mm512_fmadd_ps(f5, b, one);
    f6 = _mm512_fmadd_ps(f6, b, one); f7 = _mm512_fmadd_ps(f7, b, one);
    __asm__ volatile("" : "+v"(f0), "+v"(f1), "+v"(f2), "+v"(f3), "+v"(f4), "+v"(f5), "+v"(f6), "+v"(f7));
  }
  t = now() - t;
  printf("zmm FMA: %.2f per ns\n", 8.0 * N / t / 1e9);
  __m512 a0 = _mm512_set1_ps(1.1f), a1 = _mm512_set1_ps(1.2f), a2 = _mm512_set1_ps(1.3f), a3 = _mm512_set1_ps(1.4f);
  t = now();
  for (long i = 0; i < N / 4; i++) {
    a0 = _mm512_div_ps(one, a0); a1 = _mm512_div_ps(one, a1); a2 = _mm512_div_ps(one, a2); a3 = _mm512_div_ps(one, a3);
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3));
  }
  t = now() - t;
  printf("zmm float division: %.2f ns each (%.3f ns per lane)\n", t / N * 1e9, t / N * 1e9 / 16);
  __m512d d0 = _mm512_set1_pd(1.1), d1 = _mm512_set1_pd(1.2), d2 = _mm512_set1_pd(1.3), d3 = _mm512_set1_pd(1.4);
  __m512d oned = _mm512_set1_pd(1.0);
  t = now();
  for (long i = 0; i < N / 4; i++) {
    d0 = _mm512_div_pd(oned, d0); d1 = _mm512_div_pd(oned, d1); d2 = _mm512_div_pd(oned, d2); d3 = _mm512_div_pd(oned, d3);
    __asm__ volatile("" : "+v"(d0), "+v"(d1), "+v"(d2), "+v"(d3));
  }
  t = now() - t;
  printf("zmm double division: %.2f ns each (%.3f ns per lane)\n", t / N * 1e9, t / N * 1e9 / 8);
  float s[16];
  _mm512_storeu_ps(s, _mm512_add_ps(_mm512_add_ps(f0, f7), a0));
  return s[0] == 12345.f;
}
