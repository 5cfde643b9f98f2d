/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers for writing JSON with yajl_gen: a string (NULL gives null)
 * and "key": value pairs. */
#ifndef MOAT_JSON_GEN_H
#define MOAT_JSON_GEN_H

#include <stdbool.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

static inline void
moat_gen_str (yajl_gen g, const char *s)
{
        if (s)
                yajl_gen_string (g, (const unsigned char *)s, strlen (s));
        else
                yajl_gen_null (g);
}

/* "k": "v" (null if v is NULL) */
static inline void
moat_gen_kv (yajl_gen g, const char *k, const char *v)
{
        moat_gen_str (g, k);
        moat_gen_str (g, v);
}

static inline void
moat_gen_kint (yajl_gen g, const char *k, long long v)
{
        moat_gen_str (g, k);
        yajl_gen_integer (g, v);
}

static inline void
moat_gen_kbool (yajl_gen g, const char *k, bool v)
{
        moat_gen_str (g, k);
        yajl_gen_bool (g, v);
}

/* "k": ["a", "b", ...] from a NULL-terminated list */
static inline void
moat_gen_kstrv (yajl_gen g, const char *k, const char *const *v)
{
        moat_gen_str (g, k);
        yajl_gen_array_open (g);
        for (; *v; v++)
                moat_gen_str (g, *v);
        yajl_gen_array_close (g);
}

/* A parsed yajl tree value as it is (numbers keep their text). */
static inline void
moat_gen_value (yajl_gen g, yajl_val v)
{
        if (v == NULL || YAJL_IS_NULL (v))
                yajl_gen_null (g);
        else if (YAJL_IS_STRING (v))
                moat_gen_str (g, YAJL_GET_STRING (v));
        else if (YAJL_IS_NUMBER (v))
                yajl_gen_number (g, YAJL_GET_NUMBER (v), strlen (YAJL_GET_NUMBER (v)));
        else if (YAJL_IS_TRUE (v))
                yajl_gen_bool (g, 1);
        else if (YAJL_IS_FALSE (v))
                yajl_gen_bool (g, 0);
        else if (YAJL_IS_ARRAY (v)) {
                yajl_gen_array_open (g);
                for (size_t i = 0; i < YAJL_GET_ARRAY (v)->len; i++)
                        moat_gen_value (g, YAJL_GET_ARRAY (v)->values[i]);
                yajl_gen_array_close (g);
        } else if (YAJL_IS_OBJECT (v)) {
                yajl_gen_map_open (g);
                for (size_t i = 0; i < YAJL_GET_OBJECT (v)->len; i++) {
                        moat_gen_str (g, YAJL_GET_OBJECT (v)->keys[i]);
                        moat_gen_value (g, YAJL_GET_OBJECT (v)->values[i]);
                }
                yajl_gen_map_close (g);
        }
}

#endif
