/* SPDX-License-Identifier: Apache-2.0 */
/* config.json parsing (src/lib/oci.c): the bundle's config, a lone process
 * (exec --process, ExecProcess), a resources object (update --resources)
 * and signal names. The first byte picks the parser, the rest is the text.
 * Any input must give a parsed object or an error, never a crash or leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/log.h"
#include "moat/oci.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        static int inited;
        if (!inited) {
                moat_log_init ("/dev/null", 0, 1);
                inited = 1;
        }
        if (size < 1)
                return 0;
        char *text = malloc (size);
        memcpy (text, data + 1, size - 1);
        text[size - 1] = '\0';
        moat_error_t err = NULL;
        switch (data[0] % 4) {
        case 0: {
                struct oci_config *c = NULL;
                if (oci_config_parse (text, "config.json", &c, &err) == 0)
                        oci_config_free (c);
                break;
        }
        case 1: {
                struct oci_process *p = NULL;
                if (oci_process_parse (text, "process.json", &p, &err) == 0)
                        oci_process_free (p);
                break;
        }
        case 2: {
                struct oci_resources *r = NULL;
                if (oci_resources_parse (text, "resources", &r, &err) == 0)
                        oci_resources_free (r);
                break;
        }
        case 3:
                (void)oci_signal_parse (text);
                break;
        }
        moat_error_release (&err);
        free (text);
        return 0;
}
