/* SPDX-License-Identifier: Apache-2.0 */
#include "probe.h"

#define COM1 0x3f8
#define EXIT_PORT 0x501

void *
memset (void *d, int c, size_t n)
{
        uint8_t *p = d;
        while (n--)
                *p++ = c;
        return d;
}

void *
memcpy (void *d, const void *s, size_t n)
{
        uint8_t *p = d;
        const uint8_t *q = s;
        while (n--)
                *p++ = *q++;
        return d;
}

int
memcmp (const void *a, const void *b, size_t n)
{
        const uint8_t *p = a, *q = b;
        for (; n; n--, p++, q++)
                if (*p != *q)
                        return *p - *q;
        return 0;
}

size_t
strlen (const char *s)
{
        size_t n = 0;
        while (s[n])
                n++;
        return n;
}

void
serial_init (void)
{
        outb (COM1 + 1, 0x00); /* no interrupts */
        outb (COM1 + 3, 0x80); /* DLAB */
        outb (COM1 + 0, 0x01); /* 115200 */
        outb (COM1 + 1, 0x00);
        outb (COM1 + 3, 0x03); /* 8N1 */
        outb (COM1 + 2, 0xc7); /* FIFO */
        outb (COM1 + 4, 0x0b);
}

void
put_char (char c)
{
        while (!(inb (COM1 + 5) & 0x20))
                ;
        outb (COM1, c);
}

void
put_str (const char *s)
{
        while (*s)
                put_char (*s++);
}

void
say (const char *s)
{
        put_str (s);
        put_char ('\n');
}

void
put_hex (uint64_t v)
{
        char b[19];
        int i = 18;
        b[i] = 0;
        do {
                b[--i] = "0123456789abcdef"[v & 15];
                v >>= 4;
        } while (v);
        b[--i] = 'x';
        b[--i] = '0';
        put_str (b + i);
}

void
put_dec (uint64_t v)
{
        char b[21];
        int i = 20;
        b[i] = 0;
        do {
                b[--i] = '0' + v % 10;
                v /= 10;
        } while (v);
        put_str (b + i);
}

void
probe_exit (int status)
{
        outb (EXIT_PORT, status);
        for (;;)
                __asm__ volatile("cli; hlt");
}

const char *
cmdline (const struct boot_params *bp)
{
        return (const char *)(uintptr_t)bp->hdr.cmd_line_ptr;
}

const char *
cmdline_get (const struct boot_params *bp, const char *key, char *buf, size_t size)
{
        const char *s = cmdline (bp);
        size_t kl = strlen (key);
        while (*s) {
                while (*s == ' ')
                        s++;
                if (memcmp (s, key, kl) == 0 && s[kl] == '=') {
                        s += kl + 1;
                        size_t i = 0;
                        while (s[i] && s[i] != ' ' && i + 1 < size) {
                                buf[i] = s[i];
                                i++;
                        }
                        buf[i] = 0;
                        return buf;
                }
                while (*s && *s != ' ')
                        s++;
        }
        return NULL;
}

const char *
parse_num (const char *s, uint64_t *out)
{
        uint64_t v = 0;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                s += 2;
                for (;; s++) {
                        int d;
                        if (*s >= '0' && *s <= '9')
                                d = *s - '0';
                        else if (*s >= 'a' && *s <= 'f')
                                d = *s - 'a' + 10;
                        else if (*s >= 'A' && *s <= 'F')
                                d = *s - 'A' + 10;
                        else
                                break;
                        v = v * 16 + d;
                }
        } else {
                while (*s >= '0' && *s <= '9')
                        v = v * 10 + (*s++ - '0');
        }
        *out = v;
        return s;
}

static int failures;

void
check (bool ok, const char *what)
{
        put_str (ok ? "ok " : "FAIL ");
        say (what);
        if (!ok)
                failures++;
}

int
probe_report (void)
{
        say (failures ? "moat-probe: FAILED" : "moat-probe: all checks passed");
        return failures ? 1 : 0;
}
