#include "schema.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- the default schema (CONTRACT.md, labels from DOMAIN.md) ---- */

static const enum_def_t gender_enum[] = {
    {"male", "男", "Male"},
    {"female", "女", "Female"},
    {NULL, NULL, NULL},
};

static const enum_def_t category_enum[] = {
    {"left_behind", "留守儿童", "Left-behind child"},
    {"orphan", "孤儿", "Orphan"},
    {"de_facto_unsupported", "事实无人抚养儿童", "De facto unsupported child"},
    {"disabled", "残疾儿童", "Child with disability"},
    {"serious_illness", "重病儿童", "Seriously ill child"},
    {"low_income", "低保/特困家庭儿童", "Child of a subsistence-allowance family"},
    {"dropout", "辍学儿童", "School dropout"},
    {"other_difficulty", "其他困境儿童", "Other child in difficulty"},
    {NULL, NULL, NULL},
};

static const enum_def_t left_behind_enum[] = {
    {"both_parents_away", "父母均外出务工", "Both parents working away"},
    {"one_away_other_incapable", "一方外出另一方无监护能力",
     "One parent away, the other unable to care"},
    {NULL, NULL, NULL},
};

static const enum_def_t guardian_enum[] = {
    {"grandparent", "祖父母/外祖父母监护", "Grandparent"},
    {"relative", "其他亲友监护", "Other relative or friend"},
    {"institution", "机构监护", "Institution"},
    {"parent", "父(母)监护", "Parent"},
    {"none", "无人监护", "No guardian"},
    {NULL, NULL, NULL},
};

static const enum_def_t parent_enum[] = {
    {"at_home", "在家", "At home"},
    {"migrant_worker", "外出务工", "Migrant worker"},
    {"deceased", "死亡", "Deceased"},
    {"incapable", "无监护能力", "Unable to care"},
    {"unknown", "不详", "Unknown"},
    {NULL, NULL, NULL},
};

static const enum_def_t school_enum[] = {
    {"not_school_age", "未到入学年龄", "Not of school age"},
    {"preschool", "学前教育", "Preschool"},
    {"enrolled", "在校", "Enrolled"},
    {"boarding", "寄宿", "Boarding"},
    {"dropped_out", "辍学", "Dropped out"},
    {"graduated", "毕业", "Graduated"},
    {NULL, NULL, NULL},
};

static const enum_def_t risk_enum[] = {
    {"low", "低", "Low"},
    {"medium", "中", "Medium"},
    {"high", "高", "High"},
    {NULL, NULL, NULL},
};

static const enum_def_t status_enum[] = {
    {"active", "在册", "Active"},
    {"exited", "已退出", "Exited"},
    {NULL, NULL, NULL},
};

static const enum_def_t exit_enum[] = {
    {"parents_returned", "父母返乡", "Parents returned"},
    {"reached_age_limit", "年满16/18周岁", "Reached the age limit"},
    {"moved_away", "迁出", "Moved away"},
    {"category_changed", "类别变更", "Category changed"},
    {"death", "死亡", "Death"},
    {"other", "其他", "Other"},
    {NULL, NULL, NULL},
};

/* Shorthands keep the table one line per field. */
#define STR(n, p, len, zh, en) {n, FT_STR, false, p, NULL, zh, en, len}
#define TYPED(n, t, req, p, zh, en) {n, t, req, p, NULL, zh, en, 0}
#define ENUM(n, t, req, e, zh, en) {n, t, req, false, e, zh, en, 0}

static const field_def_t fields[] = {
    {"name", FT_STR, true, true, NULL, "姓名", "Name", 64},
    ENUM("gender", FT_ENUM, true, gender_enum, "性别", "Gender"),
    TYPED("birth_date", FT_DATE, true, false, "出生日期", "Date of birth"),
    TYPED("id_number", FT_IDNUM, false, true, "公民身份号码", "Citizen ID number"),
    STR("ethnicity", false, 32, "民族", "Ethnicity"),
    STR("household_address", true, 256, "户籍地址", "Registered household address"),
    TYPED("village_code", FT_CODE, true, false, "所在村(居)委会", "Village committee"),
    ENUM("categories", FT_SET, false, category_enum, "儿童类别", "Categories"),
    ENUM("left_behind_type", FT_ENUM, false, left_behind_enum, "留守类型",
         "Left-behind type"),
    ENUM("guardian_type", FT_ENUM, false, guardian_enum, "监护类型", "Guardianship"),
    STR("guardian_name", true, 64, "受委托监护人姓名", "Guardian's name"),
    STR("guardian_relation", false, 32, "与儿童关系", "Relation to the child"),
    TYPED("guardian_phone", FT_PHONE, false, true, "联系电话", "Guardian's phone"),
    TYPED("guardian_capable", FT_BOOL, false, false, "是否具备监护能力",
          "Guardian able to care"),
    ENUM("father_status", FT_ENUM, false, parent_enum, "父亲状况", "Father's status"),
    STR("father_work_place", true, 128, "父亲务工地点", "Father's place of work"),
    TYPED("father_phone", FT_PHONE, false, true, "父亲联系电话", "Father's phone"),
    ENUM("mother_status", FT_ENUM, false, parent_enum, "母亲状况", "Mother's status"),
    STR("mother_work_place", true, 128, "母亲务工地点", "Mother's place of work"),
    TYPED("mother_phone", FT_PHONE, false, true, "母亲联系电话", "Mother's phone"),
    STR("school_name", false, 128, "就读学校", "School"),
    STR("grade", false, 32, "年级", "Grade"),
    ENUM("school_status", FT_ENUM, false, school_enum, "就学状况", "Schooling"),
    STR("health_status", false, 128, "健康状况", "Health"),
    STR("disability_type", false, 64, "残疾类别", "Disability type"),
    STR("disability_level", false, 32, "残疾等级", "Disability level"),
    ENUM("risk_level", FT_ENUM, false, risk_enum, "风险等级", "Risk level"),
    STR("help_pairing", true, 128, "结对帮扶人", "Paired helper"),
    STR("proxy_parent", true, 128, "代理家长", "Proxy parent"),
    TYPED("last_visit_date", FT_DATE, false, false, "最近走访日期", "Last home visit"),
    ENUM("status", FT_ENUM, false, status_enum, "状态", "Status"),
    ENUM("exit_reason", FT_ENUM, false, exit_enum, "退出原因", "Exit reason"),
    TYPED("exit_date", FT_DATE, false, false, "退出日期", "Exit date"),
};

#undef STR
#undef TYPED
#undef ENUM

#define NFIELDS (sizeof fields / sizeof fields[0])

/* Indexes of fields[] in strcmp order of their names, for a binary
 * search: this lookup runs for every field of every imported row.
 * test_schema checks the order. */
static const unsigned char by_name[] = {2, 7, 25, 24, 4, 32, 31, 16, 14, 15, 1, 21, 13, 10, 12, 11, 9, 23, 27, 5, 3, 29, 8, 19, 17, 18, 0, 28, 26, 20, 22, 30, 6};

/* ---- field numbers ----
 *
 * Records and changes name a field of this schema by its number, its place
 * in fields[] (so a new field is only ever appended), and any other field
 * (local x_ and journal names) by its text: a third of a record's bytes
 * were names. In memory such a field's name is the one interned copy
 * below, so telling a schema name, finding its definition and comparing
 * two of them are arithmetic; by_name's order is strcmp's, so comparing
 * ranks agrees with comparing the text. */
#define NAME_W 32
static char interned[NFIELDS][NAME_W];
static unsigned char rank[NFIELDS]; /* place in by_name */
static pthread_once_t interned_once = PTHREAD_ONCE_INIT;

static void intern_init(void)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        snprintf(interned[i], NAME_W, "%s", fields[i].name);
        rank[by_name[i]] = (unsigned char)i;
    }
}

bool schema_interned(const char *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)interned[0];
    return a >= lo && a < lo + sizeof interned && (a - lo) % NAME_W == 0;
}

static int num_of_interned(const char *p)
{
    return (int)(((uintptr_t)p - (uintptr_t)interned[0]) / NAME_W);
}

static int num_by_search(const char *name);

int schema_num(const char *name)
{
    if (!name)
        return -1;
    return schema_interned(name) ? num_of_interned(name) : num_by_search(name);
}

const char *schema_num_name(uint64_t num)
{
    if (num >= NFIELDS)
        return NULL;
    pthread_once(&interned_once, intern_init);
    return interned[num];
}

const char *schema_intern(const char *name)
{
    int n = schema_num(name);
    return n < 0 ? NULL : schema_num_name((uint64_t)n);
}

int schema_name_cmp(const char *a, const char *b)
{
    if (schema_interned(a) && schema_interned(b))
        return (int)rank[num_of_interned(a)] - (int)rank[num_of_interned(b)];
    return strcmp(a, b);
}

static int num_by_search(const char *name)
{
    size_t lo = 0, hi = NFIELDS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(fields[by_name[mid]].name, name);
        if (c == 0)
            return by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

bool schema_retention_marker(const val_t *name)
{
    return name && name->kind == VAL_STR && name->s
           && (strcmp(name->s, SCHEMA_NAME_ANONYMISED) == 0
               || strcmp(name->s, SCHEMA_NAME_PURGED) == 0);
}

bool schema_retention_removes(const val_t *marker, const char *field)
{
    static const char *const anonymised[] = {"name", "id_number", "guardian_name",
        "guardian_phone", "father_phone", "mother_phone", "household_address",
        "father_work_place", "mother_work_place", NULL};
    static const char *const purge_keeps[] = {"village_code", "gender", "birth_date",
        "status", "exit_reason", "exit_date", NULL};
    if (!schema_retention_marker(marker) || !field)
        return false;
    bool purge = strcmp(marker->s, SCHEMA_NAME_PURGED) == 0;
    for (const char *const *f = purge ? purge_keeps : anonymised; *f; f++)
        if (strcmp(*f, field) == 0)
            return !purge;
    return purge;
}

const field_def_t *schema_field(const char *name)
{
    int n = schema_num(name);
    return n < 0 ? NULL : &fields[n];
}

size_t schema_count(void) { return NFIELDS; }

const field_def_t *schema_at(size_t i)
{
    return i < NFIELDS ? &fields[i] : NULL;
}

static const enum_def_t *enum_find(const field_def_t *d, const char *value)
{
    if (!d->enums || !value)
        return NULL;
    for (const enum_def_t *e = d->enums; e->value; e++)
        if (strcmp(e->value, value) == 0)
            return e;
    return NULL;
}

const char *schema_enum_label(const field_def_t *d, const char *value, bool zh)
{
    const enum_def_t *e = d ? enum_find(d, value) : NULL;
    return e ? (zh ? e->zh : e->en) : NULL;
}

/* ---- text primitives ---- */

/* One multi-byte UTF-8 sequence at p (p[0] >= 0x80, at most avail bytes
 * readable): its length with *cp its code point, or 0 when it is not
 * valid (a continuation or overlong lead, over U+10FFFF, a surrogate, cut
 * short). A NUL is no continuation byte, so a NUL-terminated string is
 * never read past its end whatever avail says. */
static inline size_t utf8_seq(const unsigned char *p, size_t avail, unsigned *cp)
{
    unsigned b = p[0], c, min;
    size_t len;
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2; c = b & 0x1F; min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3; c = b & 0x0F; min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4; c = b & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if (avail < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned cp;
        size_t len = p[i] < 0x80 ? 1 : utf8_seq(p + i, n - i, &cp);
        if (!len)
            return false;
        i += len;
    }
    return true;
}

/* Control characters (C0, DEL, C1) in a stored value would corrupt CSV
 * exports, logs and the console; every field is single-line. */
static bool has_control(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (; *p; p++) {
        if (*p < 0x20 || *p == 0x7F)
            return true;
        if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
            return true;
    }
    return false;
}

/* Copies a non-personal value into a message safely: only clean UTF-8,
 * cut at a character boundary, so a hostile value cannot garble a log. */
static const char *echo(const char *s, char *buf, size_t cap)
{
    size_t n = strlen(s);
    if (!utf8_valid(s, n) || has_control(s))
        return "(malformed text)";
    if (n >= cap) {
        n = cap - 4;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        snprintf(buf, cap, "%.*s...", (int)n, s);
    } else {
        memcpy(buf, s, n + 1);
    }
    return buf;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

bool date_valid(const char *s)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4)
        || !digits(s + 5, 2) || !digits(s + 8, 2))
        return false;
    int y = num(s, 4), m = num(s + 5, 2), d = num(s + 8, 2);
    if (y < 1900 || y > 2199 || m < 1 || m > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

char idnum_check_char(const char *first17)
{
    static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (first17[i] - '0') * w[i];
    return "10X98765432"[sum % 11];
}

int idnum_check(const char *s, why_t *why)
{
    if (!s || strlen(s) != 18)
        return why_set(why, LX_EINVAL, "must be 18 characters");
    if (!digits(s, 17))
        return why_set(why, LX_EINVAL, "the first 17 characters must be digits");
    char date[11] = {s[6], s[7], s[8], s[9], '-', s[10], s[11], '-', s[12], s[13], 0};
    if (!date_valid(date))
        return why_set(why, LX_EINVAL, "embedded birth date is not a real date");
    if (s[17] == 'x')
        return why_set(why, LX_EINVAL, "check character must be an upper-case X");
    if (s[17] != idnum_check_char(s))
        return why_set(why, LX_EINVAL, "check digit does not match");
    return LX_OK;
}

/* Digits, spaces, '-' and a leading '+': what people write on forms. */
static bool phone_valid(const char *s)
{
    size_t n = strlen(s), nd = 0;
    if (n < 5 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            nd++;
        else if (!(s[i] == ' ' || s[i] == '-' || (s[i] == '+' && i == 0)))
            return false;
    }
    return nd > 0;
}

/* ---- values ---- */

static const char *kind_name(val_kind_t k)
{
    switch (k) {
    case VAL_NIL: return "null";
    case VAL_BOOL: return "a boolean";
    case VAL_STR: return "text";
    case VAL_LIST: return "a list";
    }
    return "an unknown kind";
}

static int bad_enum(const field_def_t *d, const char *got, why_t *why)
{
    char list[240] = "", buf[48];
    size_t used = 0;
    for (const enum_def_t *e = d->enums; e->value && used < sizeof list; e++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s",
                         used ? ", " : "", e->value);
        used += w > 0 ? (size_t)w : 0;
    }
    if (d->personal)
        return why_set(why, LX_EINVAL, "field %s: expected one of %s", d->name,
                       list);
    return why_set(why, LX_EINVAL, "field %s: expected one of %s, got \"%s\"",
                   d->name, list, echo(got, buf, sizeof buf));
}

/* utf8_valid, has_control and strlen in one pass over a NUL-terminated
 * string (every value of every change goes through here): false when it
 * is not valid UTF-8; else its length, and whether it holds a control
 * character (C0, DEL, or C1, which is U+0080..U+009F). */
static bool text_scan(const char *s, size_t *len, bool *ctrl)
{
    const unsigned char *p = (const unsigned char *)s;
    bool c = false;
    for (;;) {
        unsigned b = *p;
        if (b < 0x80) {
            if (b == 0)
                break;
            c |= b < 0x20 || b == 0x7F;
            p++;
            continue;
        }
        unsigned cp;
        size_t n = utf8_seq(p, SIZE_MAX, &cp);  /* stops at the NUL */
        if (!n)
            return false;
        c |= cp <= 0x9F;
        p += n;
    }
    *len = (size_t)(p - (const unsigned char *)s);
    *ctrl = c;
    return true;
}

static int check_text(const field_def_t *d, const char *s, why_t *why)
{
    size_t n;
    bool ctrl;
    if (!text_scan(s, &n, &ctrl))
        return why_set(why, LX_EINVAL, "field %s: not valid UTF-8", d->name);
    if (ctrl)
        return why_set(why, LX_EINVAL, "field %s: contains control characters",
                       d->name);
    if (d->type == FT_STR && n > d->max_len)
        return why_set(why, LX_EINVAL, "field %s: longer than %u bytes", d->name,
                       d->max_len);
    return LX_OK;
}

static int check_set(const field_def_t *d, const val_t *v, why_t *why)
{
    for (uint32_t i = 0; i < v->n; i++) {
        const char *it = v->items[i];
        if (!it)
            return why_set(why, LX_EINVAL, "field %s: null item", d->name);
        if (!enum_find(d, it))
            return bad_enum(d, it, why);
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(v->items[j], it) == 0)
                return why_set(why, LX_EINVAL, "field %s: \"%s\" appears twice",
                               d->name, it);
    }
    return LX_OK;
}

int schema_check_value(const field_def_t *d, const val_t *v, why_t *why)
{
    char buf[48];
    if (!v || v->kind == VAL_NIL) {
        if (d->required)
            return why_set(why, LX_EINVAL, "field %s: required", d->name);
        return LX_OK;
    }
    val_kind_t want = d->type == FT_BOOL ? VAL_BOOL
                      : d->type == FT_SET ? VAL_LIST : VAL_STR;
    if (v->kind != want || (want == VAL_STR && !v->s)
        || (want == VAL_LIST && v->n && !v->items))
        return why_set(why, LX_EINVAL, "field %s: expected %s, got %s", d->name,
                       kind_name(want), kind_name(v->kind));
    if (want == VAL_BOOL)
        return LX_OK;
    if (want == VAL_LIST)
        return check_set(d, v, why);

    const char *s = v->s;
    if (d->required && !*s)
        return why_set(why, LX_EINVAL, "field %s: required", d->name);
    int rc = check_text(d, s, why);
    if (rc)
        return rc;
    code_t c;
    switch (d->type) {
    case FT_STR:
        return LX_OK;
    case FT_ENUM:
        return enum_find(d, s) ? LX_OK : bad_enum(d, s, why);
    case FT_DATE:
        /* Not echoed: a birth date is close to personal. */
        return date_valid(s) ? LX_OK
               : why_set(why, LX_EINVAL,
                         "field %s: not a real YYYY-MM-DD date in 1900..2199",
                         d->name);
    case FT_CODE:
        if (code_parse(s, &c) != LX_OK)
            return why_set(why, LX_EINVAL, "field %s: \"%s\" is not a division code",
                           d->name, echo(s, buf, sizeof buf));
        if (code_level(c) != LEVEL_VILLAGE)
            return why_set(why, LX_EINVAL, "field %s: %s is a %s code, not a village",
                           d->name, s, level_name(code_level(c)));
        return LX_OK;
    case FT_IDNUM:
        rc = idnum_check(s, why);
        return rc ? why_prefix(why, rc, "field %s", d->name) : LX_OK;
    case FT_PHONE:
        if (phone_valid(s))
            return LX_OK;
        return why_set(why, LX_EINVAL,
                       "field %s: expected 5 to 20 digits, spaces, '-' or a leading '+'",
                       d->name);
    case FT_BOOL:
    case FT_SET:
        break;
    }
    return why_set(why, LX_EINVAL, "field %s: unsupported type", d->name);
}

/* ---- operator text ---- */

static void trim(const char **s, size_t *n)
{
    while (*n && strchr(" \t\r\n", (*s)[0]))
        (*s)++, (*n)--;
    while (*n && strchr(" \t\r\n", (*s)[*n - 1]))
        (*n)--;
}

/* Operators may type a value, its Chinese label or its English label;
 * records always store the value. NULL when nothing matches. */
static const char *enum_from_text(const field_def_t *d, const char *t, size_t n)
{
    for (const enum_def_t *e = d->enums; e->value; e++) {
        if ((strlen(e->value) == n && memcmp(e->value, t, n) == 0)
            || (strlen(e->zh) == n && memcmp(e->zh, t, n) == 0)
            || (strlen(e->en) == n && strncasecmp(e->en, t, n) == 0))
            return e->value;
    }
    return NULL;
}

static int parse_bool(const char *t, size_t n, bool *b)
{
    static const char *const yes[] = {"true", "1", "yes", "是"};
    static const char *const no[] = {"false", "0", "no", "否"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strlen(yes[i]) == n && strncasecmp(yes[i], t, n) == 0)
            return *b = true, LX_OK;
        if (strlen(no[i]) == n && strncasecmp(no[i], t, n) == 0)
            return *b = false, LX_OK;
    }
    return LX_EINVAL;
}

/* Items are trimmed and may be values or labels; empty items (a trailing
 * separator) are skipped. Duplicates are left for schema_check_value. */
static int parse_set(const field_def_t *d, const char *t, size_t n, val_t *out,
                     why_t *why)
{
    out->kind = VAL_LIST;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && t[j] != ';' && t[j] != '|')
            j++;
        const char *it = t + i;
        size_t len = j - i;
        trim(&it, &len);
        if (len) {
            const char *v = enum_from_text(d, it, len);
            if (!v) {
                char got[48];
                snprintf(got, sizeof got, "%.*s",
                         (int)(len < sizeof got ? len : sizeof got - 1), it);
                return bad_enum(d, got, why);
            }
            int rc = val_list_add(out, v);
            if (rc)
                return why_set(why, rc, "field %s: %s", d->name, err_str(rc));
        }
        i = j + 1;
    }
    return LX_OK;
}

int schema_parse_text(const field_def_t *d, const char *text, val_t *out,
                      why_t *why)
{
    *out = (val_t){0};
    const char *t = text ? text : "";
    size_t n = strlen(t);
    trim(&t, &n);
    int rc = LX_OK;
    if (n == 0) {
        /* nothing: VAL_NIL, which check_value refuses for required fields */
    } else if (d->type == FT_BOOL) {
        out->kind = VAL_BOOL;
        if (parse_bool(t, n, &out->b) != LX_OK) {
            *out = (val_t){0};
            char buf[48];
            return why_set(why, LX_EINVAL,
                           "field %s: expected true/false, yes/no, 1/0 or 是/否, "
                           "got \"%s\"", d->name, echo(text, buf, sizeof buf));
        }
    } else if (d->type == FT_SET) {
        rc = parse_set(d, t, n, out, why);
    } else {
        const char *v = d->type == FT_ENUM ? enum_from_text(d, t, n) : NULL;
        rc = v ? val_set_str(out, v) : val_set_strn(out, t, n);
        if (rc)
            why_set(why, rc, "field %s: %s", d->name, err_str(rc));
    }
    if (rc) {
        val_free(out);
        return rc;
    }
    rc = schema_check_value(d, out, why);
    if (rc)
        val_free(out);
    return rc;
}

/* ---- records ---- */

/* The ID number restates birth date (digits 7-14) and sex (digit 17, odd
 * for men); a mismatch is a typing error in one of them. */
static int check_idnum_consistent(const record_t *r, why_t *why)
{
    const char *id = record_str(r, "id_number");
    const char *birth = record_str(r, "birth_date");
    const char *gender = record_str(r, "gender");
    if (!id)
        return LX_OK;
    if (birth && (memcmp(id + 6, birth, 4) != 0 || memcmp(id + 10, birth + 5, 2) != 0
                  || memcmp(id + 12, birth + 8, 2) != 0))
        return why_set(why, LX_EINVAL,
                       "field id_number: embedded birth date does not match birth_date");
    if (gender && ((id[16] - '0') % 2 == 1) != (strcmp(gender, "male") == 0))
        return why_set(why, LX_EINVAL,
                       "field id_number: embedded sex does not match gender");
    return LX_OK;
}

static const field_def_t *default_lookup(const void *ctx, const char *name)
{
    (void)ctx;
    return schema_field(name);
}

int schema_check_record(const record_t *r, code_t node, why_t *why)
{
    return schema_check_record_in(r, node, default_lookup, NULL, why);
}

int schema_check_record_in(const record_t *r, code_t node, schema_lookup_fn lookup,
                           const void *ctx, why_t *why)
{
    char buf[48];
    for (uint32_t i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        const field_def_t *d = f->name ? lookup(ctx, f->name) : NULL;
        int rc;
        if (!d && f->name && schema_local_name(f->name))
            rc = schema_check_local(f->name, &f->val, why);
        else if (!d && f->name && schema_journal_name(f->name))
            rc = schema_check_journal(f->name, &f->val, why);
        else if (!d)
            return why_set(why, LX_EINVAL, "unknown field %s",
                           f->name ? echo(f->name, buf, sizeof buf) : "(null)");
        else
            rc = schema_check_value(d, &f->val, why);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].required && !record_val(r, fields[i].name))
            return why_set(why, LX_EINVAL, "field %s: required", fields[i].name);

    const char *vs = record_str(r, "village_code");
    code_t village = 0;
    if (!vs || code_parse(vs, &village) != LX_OK)
        return why_set(why, LX_EINVAL, "field village_code: required");
    if (!code_contains(node, village))
        return why_set(why, LX_ESCOPE,
                       "field village_code: %s is outside this node's subtree", vs);

    int rc = check_idnum_consistent(r, why);
    if (rc)
        return rc;
    const char *status = record_str(r, "status");
    if (status && strcmp(status, "exited") == 0 && !record_val(r, "exit_reason"))
        return why_set(why, LX_EINVAL,
                       "field exit_reason: required when status is exited");
    return LX_OK;
}

bool schema_local_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 3 || n > 64 || strncmp(name, "x_", 2) != 0 || name[2] < 'a' || name[2] > 'z')
        return false;
    for (size_t i = 2; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')
              || name[i] == '_'))
            return false;
    return true;
}

bool schema_journal_name(const char *name)
{
    size_t n = strlen(name), p = strncmp(name, "ev_", 3) == 0 ? 3
                                 : strncmp(name, "case_", 5) == 0 ? 5 : 0;
    if (!p || n <= p || n > 64)
        return false;
    for (size_t i = p; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')
              || name[i] == '_'))
            return false;
    return true;
}

int schema_check_journal(const char *name, const val_t *v, why_t *why)
{
    if (!schema_journal_name(name))
        return why_set(why, LX_EINVAL, "field %.64s: unknown field", name);
    size_t n = v->kind == VAL_STR && v->s ? strlen(v->s) : 0;
    if (v->kind != VAL_STR || n < 2 || n > SCHEMA_JOURNAL_MAX || v->s[0] != '{'
        || v->s[n - 1] != '}' || !utf8_valid(v->s, n) || has_control(v->s))
        return why_set(why, LX_EINVAL, "field %s: expected a JSON object as single-line "
                       "text of at most %d bytes", name, SCHEMA_JOURNAL_MAX);
    return LX_OK;
}

/* Local fields are defined by a policy of the level that made them, which
 * the levels above do not hold: they check what any such field can be. */
static int check_local_text(const char *name, const char *s, why_t *why)
{
    if (!s)
        return why_set(why, LX_EINVAL, "field %s: null text", name);
    size_t n = strlen(s);
    if (n > SCHEMA_LOCAL_MAX || !utf8_valid(s, n) || has_control(s))
        return why_set(why, LX_EINVAL, "field %s: expected single-line UTF-8 text of at "
                       "most %d bytes", name, SCHEMA_LOCAL_MAX);
    return LX_OK;
}

int schema_check_local(const char *name, const val_t *v, why_t *why)
{
    if (!schema_local_name(name))
        return why_set(why, LX_EINVAL, "field %.64s: unknown field", name);
    switch (v->kind) {
    case VAL_NIL:
    case VAL_BOOL:
        return LX_OK;
    case VAL_STR:
        return check_local_text(name, v->s, why);
    case VAL_LIST:
        if (v->n > SCHEMA_LOCAL_ITEMS)
            return why_set(why, LX_EINVAL, "field %s: more than %d items", name,
                           SCHEMA_LOCAL_ITEMS);
        for (uint32_t i = 0; i < v->n; i++)
            if (check_local_text(name, v->items ? v->items[i] : NULL, why))
                return LX_EINVAL;
        return LX_OK;
    }
    return why_set(why, LX_EINVAL, "field %s: unknown kind of value", name);
}

/* schema_field for the names of a change, which come in strcmp order:
 * each lookup walks on from where the last one stopped (*at), a step or
 * two instead of a binary search; any other name is looked up anew. */
static const field_def_t *field_after(const char *name, size_t *at)
{
    if (schema_interned(name))
        return &fields[num_of_interned(name)];
    for (size_t i = *at; i < NFIELDS; i++) {
        int c = strcmp(fields[by_name[i]].name, name);
        if (c == 0) {
            *at = i + 1;
            return &fields[by_name[i]];
        }
        if (c > 0)
            break;
    }
    return schema_field(name);
}

int schema_check_change(const change_t *c, why_t *why)
{
    size_t at = 0;
    for (uint32_t k = 0; k < c->n; k++) {
        const field_def_t *d = field_after(c->w[k].name, &at);
        if (!d && schema_local_name(c->w[k].name)) {
            if (schema_check_local(c->w[k].name, &c->w[k].val, why))
                return LX_EINVAL;
            continue;
        }
        if (!d && schema_journal_name(c->w[k].name)) {
            if (schema_check_journal(c->w[k].name, &c->w[k].val, why))
                return LX_EINVAL;
            continue;
        }
        if (!d)
            return why_set(why, LX_EINVAL, "field %.64s: unknown field", c->w[k].name);
        if (d->required && c->w[k].val.kind == VAL_NIL)
            return why_set(why, LX_EINVAL, "field %s: required, cannot be cleared", d->name);
        if (schema_check_value(d, &c->w[k].val, why))
            return LX_EINVAL;
    }
    return LX_OK;
}
