/*
 * tests/fuzz/fuzz_conf.c — libFuzzer target for the configuration loader: whatever bytes a
 * config file holds (a SIGHUP with a half-written file, say), loading ends in a config or in
 * errors, never in a crash, a hang or a leak.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "gateway/conf.h"

static char path[64];

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (path[0] == '\0')
        snprintf(path, sizeof(path), "/tmp/hegate-fuzz-conf-%d.yaml", (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
        return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *conf = gw_conf_load(path, &errs);
    gw_conf_free(conf);
    gw_errors_clear(&errs);
    return 0;
}
