/*
 * tests/unit/unit.h — what every cmocka unit test includes.
 * Each tests/unit/<folder>/test_<module>.c is one binary (see the Makefile), run from the repo root;
 * the helper sources beside this header (redis_harness.c, ...) are linked into every one.
 */
#ifndef hegate_tests_unit_h
#define hegate_tests_unit_h
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>
#endif
