/* gen: a deterministic generator of realistic synthetic children for any
 * set of villages, with shares close to the 2018 national figures (96%
 * cared for by grandparents, 54.5% boys, ages 0-5 / 6-13 / 14-16 at
 * 21.7 / 67.4 / 10.9%, school states by age). Same seed, same children. */
#ifndef LX_GEN_H
#define LX_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "code.h"
#include "record.h"

typedef struct gen gen_t;

/* villages: codes of village level (copied); today: the reference date
 * for ages as YYYYMMDD (e.g. 20261123). NULL on bad arguments. */
gen_t *gen_new(uint64_t seed, const code_t *villages, size_t nvillages,
               uint32_t today);
void gen_destroy(gen_t **self_p);

/* Makes the next child: a record with no id (id NULL is fine: the caller
 * assigns one) whose fields carry values only (versions zero). Every
 * record passes schema_check_record for a node holding its village, and
 * ID numbers are unique within one generator. *out owned by the caller. */
int gen_child(gen_t *g, record_t **out);

#endif
