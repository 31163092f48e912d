/*
 * gateway/main.c — the `hegate` command line (SPEC §1): parses the sub-command and hands over
 * to the part that implements it. The one place that wires the folders together: before serving,
 * it registers the gateway's own endpoint families (auth/http/, qr/http/) with the pipeline.
 * Nothing here touches the network or keeps state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway.h"
#include "qr/qr.h"
#include "qr/http/http.h"
#include "auth/http/http.h"

static const char usage[] =
    "usage: hegate [serve] -c FILE            run the gateway\n"
    "       hegate check -c FILE              validate a configuration (every error with file:line)\n"
    "       hegate keys generate --dir DIR    create the key set (token and code keys)\n"
    "       hegate keys rotate --dir DIR --purpose token|code   add a new signing key\n"
    "       hegate user add -c FILE --phone P --name N --id-number ID [--card KIND:NUMBER]... --password-stdin\n"
    "       hegate client hash-secret         read a client secret on stdin, print its hash for secret_hash\n"
    "       hegate qr verify --trust FILE [--now T] CODE   verify a city code offline, as a gate does\n"
    "       hegate qr make --credential FILE --device-key FILE [--counter N]   make a code, as a phone does\n"
    "       hegate --version | --help\n";

static void print_help(void)
{
    printf("hegate %s — the HTTP/2 gateway of the 鹤城在线 city services platform\n\n%s", HEGATE_VERSION, usage);
}

/* the value of "-c FILE" / "--config FILE" / "--config=FILE" in ARGV, or NULL */
static const char *config_arg(int argc, char **argv)
{
    for (int i = 0; i < argc; ++i) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    return NULL;
}

static int cmd_check(int argc, char **argv)
{
    const char *path = config_arg(argc, argv);
    if (path == NULL) {
        fprintf(stderr, "hegate check: -c FILE is required\n%s", usage);
        return 2;
    }
    gw_errors_t errs = {NULL, 0};
    gw_conf_t *conf = gw_conf_load(path, &errs);
    if (conf == NULL) {
        for (size_t i = 0; i != errs.n; ++i)
            printf("%s\n", errs.v[i]);
        gw_errors_clear(&errs);
        return 1;
    }
    printf("%s: ok (%zu listeners, %zu routes, %zu clients, %zu rate limits)\n", path, conf->num_listen, conf->num_routes,
           conf->num_clients, conf->num_rate_limits);
    gw_conf_free(conf);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *path = config_arg(argc, argv);
    if (path == NULL) {
        fprintf(stderr, "hegate: -c FILE is required\n%s", usage);
        return 2;
    }
    auth_wellknown_register();
    auth_oauth_register();
    qr_http_register();
    return gw_server_run(path);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-v") == 0) {
        printf("hegate %s (h2o %s)\n", HEGATE_VERSION, H2O_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        print_help();
        return 0;
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "keys") == 0)
        return auth_keys_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "user") == 0)
        return auth_user_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "client") == 0)
        return auth_client_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "qr") == 0)
        return qr_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    if (cmd[0] == '-')
        return cmd_serve(argc - 1, argv + 1);
    fprintf(stderr, "hegate: unknown command '%s'\n%s", cmd, usage);
    return 2;
}
