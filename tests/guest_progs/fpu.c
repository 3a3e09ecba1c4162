/* fpu: the x87/SSE state a program starts with (control word 0x37f: 64-bit precision) and
 * results that depend on it (a sum of square roots, printed to the last digit). */
#include <stdio.h>
#include <math.h>
int main(void){
  volatile double s = 0; for (int i = 1; i <= 10; i++) s += sqrt((double)i);
  printf("%.17g\n", s);
  volatile long double l = 2.0L; printf("%.21Lg\n", sqrtl(l));
  volatile double x = 22.468278186204103; printf("%.6f %.10f\n", x, x);
  unsigned short cw; __asm__("fnstcw %0" : "=m"(cw)); printf("cw %#x\n", cw);
  return 0; }
