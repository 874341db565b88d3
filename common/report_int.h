/* report_int: what report.c and report_fmt.c share and nobody else sees:
 * the column table and the report's layout. */
#ifndef LX_REPORT_INT_H
#define LX_REPORT_INT_H

#include "report.h"

enum { G_SUMMARY, G_CATEGORY, G_GUARDIAN, G_SCHOOL, G_HEALTH, G_HELP, G_FLOW, G_COUNT };

/* X(id, key, zh, en, group). The order is the column order of every
 * format. Each age band is followed by its boys and girls (report.c
 * relies on it), and the runs that must add up to the total (school
 * states, guardian types, assessments, health, exit reasons) are
 * contiguous. */
#define REPORT_COLUMNS(X) \
    X(TOTAL, "total", "在册儿童数", "Children in the registry", G_SUMMARY) \
    X(MALE, "male", "男", "Boys", G_SUMMARY) \
    X(FEMALE, "female", "女", "Girls", G_SUMMARY) \
    X(AGE0, "age_0_5", "0-5岁", "Aged 0-5", G_SUMMARY) \
    X(AGE0_M, "age_0_5_male", "0-5岁男", "Aged 0-5, boys", G_SUMMARY) \
    X(AGE0_F, "age_0_5_female", "0-5岁女", "Aged 0-5, girls", G_SUMMARY) \
    X(AGE6, "age_6_13", "6-13岁", "Aged 6-13", G_SUMMARY) \
    X(AGE6_M, "age_6_13_male", "6-13岁男", "Aged 6-13, boys", G_SUMMARY) \
    X(AGE6_F, "age_6_13_female", "6-13岁女", "Aged 6-13, girls", G_SUMMARY) \
    X(AGE14, "age_14_16", "14-16岁", "Aged 14-16", G_SUMMARY) \
    X(AGE14_M, "age_14_16_male", "14-16岁男", "Aged 14-16, boys", G_SUMMARY) \
    X(AGE14_F, "age_14_16_female", "14-16岁女", "Aged 14-16, girls", G_SUMMARY) \
    X(AGE17, "age_17", "17岁", "Aged 17", G_SUMMARY) \
    X(AGE17_M, "age_17_male", "17岁男", "Aged 17, boys", G_SUMMARY) \
    X(AGE17_F, "age_17_female", "17岁女", "Aged 17, girls", G_SUMMARY) \
    X(AGEX, "age_other", "其他年龄", "Other ages", G_SUMMARY) \
    X(AGEX_M, "age_other_male", "其他年龄男", "Other ages, boys", G_SUMMARY) \
    X(AGEX_F, "age_other_female", "其他年龄女", "Other ages, girls", G_SUMMARY) \
    X(CAT_LEFT_BEHIND, "cat_left_behind", "留守儿童", "Left-behind children", G_CATEGORY) \
    X(CAT_ORPHAN, "cat_orphan", "孤儿", "Orphans", G_CATEGORY) \
    X(CAT_DE_FACTO, "cat_de_facto_unsupported", "事实无人抚养儿童", \
      "De facto unsupported children", G_CATEGORY) \
    X(CAT_DISABLED, "cat_disabled", "残疾儿童", "Children with disabilities", G_CATEGORY) \
    X(CAT_ILLNESS, "cat_serious_illness", "重病儿童", "Seriously ill children", G_CATEGORY) \
    X(CAT_LOW_INCOME, "cat_low_income", "低保/特困家庭儿童", \
      "Children of subsistence-allowance families", G_CATEGORY) \
    X(CAT_DROPOUT, "cat_dropout", "辍学儿童", "School dropouts", G_CATEGORY) \
    X(CAT_OTHER, "cat_other_difficulty", "其他困境儿童", "Other children in difficulty", G_CATEGORY) \
    X(LBT_BOTH, "lbt_both_parents_away", "父母均外出务工", "Both parents working away", G_CATEGORY) \
    X(LBT_ONE, "lbt_one_away_other_incapable", "一方外出另一方无监护能力", \
      "One parent away, the other unable to care", G_CATEGORY) \
    X(GT_GRANDPARENT, "gt_grandparent", "祖父母/外祖父母监护", "Grandparents", G_GUARDIAN) \
    X(GT_RELATIVE, "gt_relative", "其他亲友监护", "Other relatives or friends", G_GUARDIAN) \
    X(GT_INSTITUTION, "gt_institution", "机构监护", "Institution", G_GUARDIAN) \
    X(GT_PARENT, "gt_parent", "父(母)监护", "Parent", G_GUARDIAN) \
    X(GT_NONE, "gt_none", "无人监护", "No guardian", G_GUARDIAN) \
    X(GT_UNSET, "gt_unset", "监护类型未填", "Guardianship not filled in", G_GUARDIAN) \
    X(GA_GOOD, "ga_good", "监护状况较好", "Guardianship good", G_GUARDIAN) \
    X(GA_AVERAGE, "ga_average", "监护状况一般", "Guardianship average", G_GUARDIAN) \
    X(GA_POOR, "ga_poor", "监护状况较差", "Guardianship poor", G_GUARDIAN) \
    X(SCHOOL_NOT_AGE, "school_not_school_age", "未到入学年龄", "Not of school age", G_SCHOOL) \
    X(SCHOOL_PRESCHOOL, "school_preschool", "学前教育", "Preschool", G_SCHOOL) \
    X(SCHOOL_ENROLLED, "school_enrolled", "在校", "Enrolled", G_SCHOOL) \
    X(SCHOOL_BOARDING, "school_boarding", "寄宿", "Boarding", G_SCHOOL) \
    X(SCHOOL_DROPPED, "school_dropped_out", "辍学", "Dropped out", G_SCHOOL) \
    X(SCHOOL_GRADUATED, "school_graduated", "毕业", "Graduated", G_SCHOOL) \
    X(SCHOOL_UNSET, "school_unset", "就学状况未填", "Schooling not filled in", G_SCHOOL) \
    X(HEALTH_GOOD, "health_good", "健康", "Healthy", G_HEALTH) \
    X(HEALTH_FAIR, "health_fair", "健康状况一般", "Fair health", G_HEALTH) \
    X(HEALTH_POOR, "health_poor", "健康状况较差", "Poor health", G_HEALTH) \
    X(HEALTH_OTHER, "health_other", "其他健康状况", "Other health status", G_HEALTH) \
    X(HEALTH_UNSET, "health_unset", "健康状况未填", "Health not filled in", G_HEALTH) \
    X(HELP_PAIRING, "help_pairing", "结对帮扶", "Paired with a helper", G_HELP) \
    X(PROXY_PARENT, "proxy_parent", "代理家长", "With a proxy parent", G_HELP) \
    X(VISITED, "visited", "本季度走访", "Visited at home this quarter", G_HELP) \
    X(RISK_HIGH, "risk_high", "高风险(在案)", "High risk (open cases)", G_HELP) \
    X(CASE_OPENED, "case_opened", "本季度立案", "Cases opened this quarter", G_HELP) \
    X(CASE_CLOSED, "case_closed", "本季度结案", "Cases closed this quarter", G_HELP) \
    X(ENTRIES, "entries", "本季度新增", "Entries this quarter", G_FLOW) \
    X(EXITS, "exits", "本季度退出", "Exits this quarter", G_FLOW) \
    X(EXIT_PARENTS_RETURNED, "exit_parents_returned", "父母返乡", "Parents returned", G_FLOW) \
    X(EXIT_AGE, "exit_reached_age_limit", "年满16/18周岁", "Reached the age limit", G_FLOW) \
    X(EXIT_MOVED, "exit_moved_away", "迁出", "Moved away", G_FLOW) \
    X(EXIT_CATEGORY, "exit_category_changed", "类别变更", "Category changed", G_FLOW) \
    X(EXIT_DEATH, "exit_death", "死亡", "Death", G_FLOW) \
    X(EXIT_OTHER, "exit_other", "其他原因", "Other reasons", G_FLOW) \
    X(EXIT_UNSET, "exit_unset", "退出原因未填", "Reason not filled in", G_FLOW)

enum {
#define X(id, key, zh, en, g) C_##id,
    REPORT_COLUMNS(X)
#undef X
    C_COUNT
};

typedef struct {
    code_t code;
    char *name;                          /* owned */
    uint64_t v[C_COUNT];
    unsigned char dig[REPORT_DIGEST_LEN]; /* little-endian sum */
} row_t;

struct report {
    char quarter[8];
    code_t node;
    hlc_t cut;
    row_t *rows;     /* units in code order, then the total */
    size_t n, cap;
};

report_t *report_alloc(const char *quarter, code_t node, hlc_t cut);
row_t *report_row_for(report_t *r, code_t code, const char *name);
/* Appends the total row; its stored name is the node's (node_name, or
 * the code when NULL), shown as 合计 / Total. */
int report_finish(report_t *r, const char *node_name);
/* a += b, both 256-bit little-endian numbers. */
void report_digest_add(unsigned char a[REPORT_DIGEST_LEN], const unsigned char b[REPORT_DIGEST_LEN]);

/* The computation, record by record (report_walk.c): report_compute is
 * walk_new, one walk_record or walk_packed per record, walk_finish. The
 * two feeds count the same; the packed one reads a record's stored bytes
 * (record_pack) without decoding what the report does not need. */
typedef struct walk walk_t;
int walk_new(code_t node, const char *quarter, const divs_t *divs, walk_t **out, why_t *why);
int walk_record(walk_t *w, const record_t *rec);
int walk_packed(walk_t *w, const void *buf, size_t len);
/* How many records walk_packed gave to the ordinary decoder (bytes its
 * reader does not know: none that record_pack wrote). */
uint64_t walk_decoded(const walk_t *w);
/* Consumes *w; *out owned by the caller. */
int walk_finish(walk_t **w, const divs_t *divs, report_t **out);
void walk_destroy(walk_t **w);

/* report_compute with the store's walk in one thread (walkers 1) or split
 * between two (2) when the store allows it, whatever its size: for
 * tests. report_compute takes two on a machine with two processors or
 * more, for a store of more than a few hundred records. */
int report_compute_walkers(stxn_t *t, code_t node, const char *quarter, const divs_t *divs,
                           int walkers, report_t **out, why_t *why);

/* "YYYY-MM-DD" in n bytes (no NUL needed) to its three numbers; false
 * when it is not that shape. Inline: the walk parses every birth date. */
static inline bool report_ymd(const char *s, size_t n, int *y, int *m, int *d)
{
    if (!s || n != 10 || s[4] != '-' || s[7] != '-')
        return false;
    int v[3] = {0}, k = 0;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            k++;
            continue;
        }
        if (s[i] < '0' || s[i] > '9')
            return false;
        v[k] = v[k] * 10 + (s[i] - '0');
    }
    *y = v[0], *m = v[1], *d = v[2];
    return true;
}

#endif
