/* SPDX-License-Identifier: Apache-2.0 */
/* Freestanding helpers for probe guests: port I/O, COM1 output, the moat
 * exit device, kernel command line parsing. */
#ifndef PROBE_H
#define PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <asm/bootparam.h>

static inline void
outb (uint16_t port, uint8_t v)
{
        __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t
inb (uint16_t port)
{
        uint8_t v;
        __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
        return v;
}
static inline uint32_t
mmio_read32 (uint64_t addr)
{
        return *(volatile uint32_t *)addr;
}
static inline void
mmio_write32 (uint64_t addr, uint32_t v)
{
        *(volatile uint32_t *)addr = v;
}

void *memset (void *d, int c, size_t n);
void *memcpy (void *d, const void *s, size_t n);
int memcmp (const void *a, const void *b, size_t n);
size_t strlen (const char *s);

void serial_init (void);
void put_char (char c);
void put_str (const char *s);
void put_hex (uint64_t v);
void put_dec (uint64_t v);
/* put_str + newline */
void say (const char *s);
__attribute__ ((noreturn)) void probe_exit (int status);
/* Prints "ok WHAT" or "FAIL WHAT" and counts the failures. */
void check (bool ok, const char *what);
/* Prints the verdict line; returns 0 if every check passed, else 1. */
int probe_report (void);

/* The command line from boot_params. */
const char *cmdline (const struct boot_params *bp);
/* Value of "key=" in the command line (copied into buf), or NULL. */
const char *cmdline_get (const struct boot_params *bp, const char *key, char *buf, size_t size);
/* Parses a decimal or 0x-hex number; returns the rest. */
const char *parse_num (const char *s, uint64_t *out);

int probe_main (struct boot_params *bp);

#endif
