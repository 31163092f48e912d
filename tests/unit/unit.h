/*
 * tests/unit/unit.h — what every cmocka unit test includes.
 * Each tests/unit/test_<module>.c is one binary (see the Makefile), run from the repo root.
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
