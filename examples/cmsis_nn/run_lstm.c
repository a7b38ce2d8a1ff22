/* qdaed example: one int8 LSTM layer through CMSIS-NN's arm_lstm_unidirectional_s8, on the files
   check_vectors.py writes (params.txt: integers; x.bin, w_ih.bin, w_hh.bin, bias.bin: raw
   little-endian arrays in qdaed's layouts); writes h.bin (B, T, H) int8. The sequence runs in
   chunks of `chunk` steps with (h, c) carried from one call to the next. */
#include <arm_nnfunctions.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *slurp(const char *dir, const char *name, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    void *p = malloc(n);
    if (!f || fread(p, 1, n, f) != n) { fprintf(stderr, "cannot read %s\n", path); exit(2); }
    fclose(f);
    return p;
}

int main(int argc, char **argv) {
    const char *dir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/params.txt", dir);
    FILE *f = fopen(path, "r");
    if (argc != 2 || !f) { fprintf(stderr, "usage: run_lstm DIR (with DIR/params.txt)\n"); return 2; }
    int B, T, I, H, z_in, z_h, p, clip, chunk;
    int m_ih[4], s_ih[4], m_hh[4], s_hh[4], fc_m, fc_s, ic_m, ic_s, o_m, o_s;
    if (fscanf(f, "%d %d %d %d %d %d %d %d %d", &B, &T, &I, &H, &z_in, &z_h, &p, &clip, &chunk) != 9) return 2;
    for (int k = 0; k < 4; k++) if (fscanf(f, "%d %d %d %d", &m_ih[k], &s_ih[k], &m_hh[k], &s_hh[k]) != 4) return 2;
    if (fscanf(f, "%d %d %d %d %d %d", &fc_m, &fc_s, &ic_m, &ic_s, &o_m, &o_s) != 6) return 2;
    fclose(f);
    int8_t *x = slurp(dir, "x.bin", (size_t)B * T * I);
    int8_t *w_ih = slurp(dir, "w_ih.bin", (size_t)4 * H * I);
    int8_t *w_hh = slurp(dir, "w_hh.bin", (size_t)4 * H * H);
    int32_t *bias = slurp(dir, "bias.bin", (size_t)4 * H * 4);
    /* the effective biases: bias - z_in * sum(w_ih) and -z_h * sum(w_hh), per gate and row */
    int32_t *eff_ih = malloc(4 * H * 4), *eff_hh = malloc(4 * H * 4);
    for (int k = 0; k < 4; k++) {
        arm_vector_sum_s8(eff_ih + k * H, I, H, w_ih + k * H * I, -z_in, 0, bias + k * H);
        arm_vector_sum_s8(eff_hh + k * H, H, H, w_hh + k * H * H, -z_h, 0, NULL);
    }
    cmsis_nn_lstm_gate g[4];   /* qdaed's order i, f, g, o */
    for (int k = 0; k < 4; k++) {
        cmsis_nn_lstm_gate t = {m_ih[k], s_ih[k], w_ih + k * H * I, eff_ih + k * H,
                                m_hh[k], s_hh[k], w_hh + k * H * H, eff_hh + k * H,
                                bias + k * H, k == 2 ? ARM_TANH : ARM_SIGMOID};
        g[k] = t;
    }
    int8_t *h_out = malloc((size_t)B * T * H);
    int8_t *hidden = malloc((size_t)B * H);     /* h_0 = z_h (the real 0), c_0 = 0 */
    int16_t *cell = calloc((size_t)B * H, 2);
    int16_t *t1 = malloc((size_t)B * H * 8), *t2 = malloc((size_t)B * H * 8);
    memset(hidden, z_h, (size_t)B * H);
    /* chunks of `chunk` steps, (h, c) carried: the input and output of a chunk are
       (B, chunk, .) slices of the batch-major tensors */
    int8_t *xc = malloc((size_t)B * chunk * I), *yc = malloc((size_t)B * chunk * H);
    for (int t0 = 0; t0 < T; t0 += chunk) {
        int n = T - t0 < chunk ? T - t0 : chunk;
        for (int b = 0; b < B; b++)
            memcpy(xc + (size_t)b * n * I, x + ((size_t)b * T + t0) * I, (size_t)n * I);
        /* batch-major; input offset -z_in; output offset z_h; gates forget, input, cell,
           output = qdaed's f, i, g, o */
        cmsis_nn_lstm_params prm = {0, B, n, I, H, -z_in, fc_m, fc_s, ic_m, ic_s, clip, p,
                                    o_m, o_s, z_h, g[1], g[0], g[2], g[3]};
        cmsis_nn_lstm_context ctx = {t1, t2, cell, hidden};
        if (arm_lstm_unidirectional_s8(xc, yc, &prm, &ctx) != ARM_CMSIS_NN_SUCCESS) return 3;
        for (int b = 0; b < B; b++)
            memcpy(h_out + ((size_t)b * T + t0) * H, yc + (size_t)b * n * H, (size_t)n * H);
    }
    snprintf(path, sizeof path, "%s/h.bin", dir);
    f = fopen(path, "wb");
    fwrite(h_out, 1, (size_t)B * T * H, f);
    fclose(f);
    return 0;
}
