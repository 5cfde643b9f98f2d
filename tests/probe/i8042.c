/* SPDX-License-Identifier: Apache-2.0 */
/* Probe (i): the i8042 controller answers what Linux's i8042 driver sends
 * while probing, at once, and reports nothing plugged in. Each wait polls
 * the status port like the driver's i8042_wait_read (up to 10000 reads,
 * without the driver's 50 us delay between them); the total is checked, so
 * a controller that leaves a command unanswered fails. Exits 0 if every
 * check passed, else 1. */
#include "probe.h"

#define DATA 0x60
#define CMD 0x64
#define STR_OBF 0x01
#define STR_AUXDATA 0x20
#define STR_TIMEOUT 0x40
#define CTR_AUXDIS 0x20
#define TIMEOUT 10000

static uint64_t polls;

/* The status once the output buffer is full, or 0 after TIMEOUT polls. */
static uint8_t
wait_read (void)
{
        for (int i = 0; i < TIMEOUT; i++) {
                uint8_t s = inb (CMD);
                polls++;
                if (s & STR_OBF)
                        return s;
        }
        return 0;
}

/* Sends a command (and a parameter when param >= 0), reads one reply byte
 * into *reply with the status it came with. false: no reply. */
static bool
command (uint8_t cmd, int param, uint8_t *reply, uint8_t *status)
{
        outb (CMD, cmd);
        if (param >= 0)
                outb (DATA, param);
        uint8_t s = wait_read ();
        if (!(s & STR_OBF))
                return false;
        *status = s;
        *reply = inb (DATA);
        return true;
}

static bool
reply_is (uint8_t cmd, int param, uint8_t want, uint8_t want_flags)
{
        uint8_t r = 0, s = 0;
        if (!command (cmd, param, &r, &s))
                return false;
        return r == want && (s & (STR_AUXDATA | STR_TIMEOUT)) == want_flags;
}

static int
read_ctr (void)
{
        uint8_t r, s;
        return command (0x20, -1, &r, &s) ? r : -1;
}

int
probe_main (struct boot_params *bp)
{
        serial_init ();
        say ("moat-probe: i8042");
        check (!(inb (CMD) & STR_OBF), "output buffer empty at start (flush finds no controller garbage)");
        int ctr = read_ctr ();
        check (ctr >= 0, "read CTR (0x20) answered");
        check (!(inb (CMD) & STR_OBF), "output buffer empty once the reply is read");
        check (read_ctr () == ctr, "CTR reads are stable");
        outb (CMD, 0x60);
        outb (DATA, 0x47);
        check (read_ctr () == 0x47, "write CTR (0x60) then read it back");
        outb (CMD, 0x60);
        outb (DATA, ctr < 0 ? 0 : ctr);
        check (reply_is (0xaa, -1, 0x55, 0), "controller self-test (0xaa) gives 0x55");
        check (reply_is (0xab, -1, 0x00, 0), "keyboard interface test (0xab) gives 0");
        check (reply_is (0xa9, -1, 0x00, 0), "aux interface test (0xa9) gives 0");
        check (reply_is (0xd3, 0x5a, 0x5a, STR_AUXDATA), "aux loopback (0xd3) echoes from the aux port");
        check (reply_is (0xd2, 0xa5, 0xa5, 0), "keyboard loopback (0xd2) echoes from the keyboard port");
        outb (CMD, 0xa7);
        check (read_ctr () >= 0 && (read_ctr () & CTR_AUXDIS), "aux disable (0xa7) shows in the CTR");
        outb (CMD, 0xa8);
        check (read_ctr () >= 0 && !(read_ctr () & CTR_AUXDIS), "aux enable (0xa8) shows in the CTR");
        outb (CMD, 0xa7);
        /* nothing plugged in: bytes for the devices time out */
        outb (DATA, 0xf2);
        uint8_t s = wait_read ();
        check ((s & (STR_OBF | STR_TIMEOUT | STR_AUXDATA)) == (STR_OBF | STR_TIMEOUT) && inb (DATA) == 0xfe,
               "a byte for the keyboard gets 0xfe with the time-out bit (no keyboard)");
        check (reply_is (0xd4, 0xf2, 0xfe, STR_AUXDATA | STR_TIMEOUT),
               "a byte for the mouse (0xd4) gets 0xfe with the time-out bit (no mouse)");
        check (!(inb (CMD) & STR_OBF), "nothing left in the output buffer");
        put_str ("status polls=");
        put_dec (polls);
        put_char ('\n');
        check (polls < 100, "every reply was there at the first polls");
        return probe_report ();
}
