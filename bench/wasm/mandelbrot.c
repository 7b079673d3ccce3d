/* Benchmark kernel: escape-time Mandelbrot set on a SIZE x SIZE grid over [-2,0.5]x[-1.25,1.25]
 * with at most ITER iterations; prints how many points stay bounded and a checksum of all
 * iteration counts. Usage: mandelbrot [SIZE] [ITER] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int size = argc > 1 ? atoi(argv[1]) : 1600;
    int iter = argc > 2 ? atoi(argv[2]) : 256;
    if (size < 1 || iter < 1)
        return 2;
    uint32_t inside = 0, check = 0;
    for (int py = 0; py < size; py++) {
        double ci = -1.25 + 2.5 * py / size;
        for (int px = 0; px < size; px++) {
            double cr = -2.0 + 2.5 * px / size;
            double zr = 0, zi = 0, zr2 = 0, zi2 = 0;
            int k = 0;
            while (k < iter && zr2 + zi2 <= 4.0) {
                zi = 2 * zr * zi + ci;
                zr = zr2 - zi2 + cr;
                zr2 = zr * zr;
                zi2 = zi * zi;
                k++;
            }
            if (k == iter)
                inside++;
            check = check * 31u + (uint32_t)k;
        }
    }
    printf("mandelbrot %dx%d iter=%d: %u inside, checksum %08x\n", size, size, iter, inside, check);
    return 0;
}
