#include "gen.h"
#include "err.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------
 * Tables. Shares follow the 2018 national figures where there are any,
 * and plausible guesses elsewhere; the header promises only that every
 * record is valid and that the headline shares hold.
 * ------------------------------------------------------------------- */

/* About a hundred common surnames with rough weights (per 100,000), so
 * that the frequent ones dominate as they do in any village register. */
static const struct {
    const char *s;
    uint32_t w;
} surnames[] = {
    {"王", 7120}, {"李", 7000}, {"张", 6740}, {"刘", 5380}, {"陈", 4530},
    {"杨", 3080}, {"黄", 2230}, {"赵", 2000}, {"吴", 1840}, {"周", 1790},
    {"徐", 1260}, {"孙", 1240}, {"马", 1190}, {"朱", 1120}, {"胡", 1070},
    {"郭", 1040}, {"何", 1000}, {"林", 950},  {"高", 930},  {"罗", 900},
    {"郑", 810},  {"梁", 700},  {"谢", 620},  {"宋", 600},  {"唐", 590},
    {"许", 520},  {"邓", 510},  {"韩", 500},  {"冯", 500},  {"曹", 490},
    {"彭", 480},  {"曾", 470},  {"肖", 460},  {"田", 450},  {"董", 440},
    {"潘", 420},  {"袁", 410},  {"蔡", 400},  {"蒋", 400},  {"余", 390},
    {"于", 380},  {"杜", 380},  {"叶", 370},  {"程", 360},  {"魏", 350},
    {"苏", 340},  {"吕", 340},  {"丁", 330},  {"任", 330},  {"卢", 320},
    {"姚", 310},  {"沈", 310},  {"钟", 300},  {"姜", 300},  {"崔", 290},
    {"谭", 290},  {"陆", 280},  {"范", 280},  {"汪", 270},  {"廖", 270},
    {"石", 260},  {"金", 260},  {"韦", 250},  {"贾", 250},  {"夏", 240},
    {"付", 240},  {"方", 230},  {"邹", 230},  {"熊", 220},  {"白", 220},
    {"孟", 210},  {"秦", 210},  {"邱", 200},  {"侯", 200},  {"江", 200},
    {"尹", 190},  {"薛", 190},  {"闫", 180},  {"段", 180},  {"雷", 180},
    {"龙", 170},  {"黎", 170},  {"史", 170},  {"陶", 160},  {"贺", 160},
    {"毛", 160},  {"郝", 150},  {"顾", 150},  {"龚", 150},  {"邵", 140},
    {"万", 140},  {"覃", 140},  {"武", 130},  {"钱", 130},  {"戴", 130},
    {"严", 120},  {"莫", 120},  {"孔", 120},  {"向", 120},  {"汤", 110},
};
#define NSURNAMES (sizeof surnames / sizeof surnames[0])

/* Common given-name characters, about 150 in all; a name draws from its
 * sex's list and the neutral one. No rare characters. */
static const char *const given_male[] = {
    "伟", "强", "磊", "军", "勇", "杰", "涛", "超", "刚", "平", "辉", "鹏",
    "华", "飞", "浩", "轩", "博", "俊", "豪", "鑫", "瑞", "睿", "泽", "航",
    "毅", "峰", "建", "国", "志", "成", "龙", "林", "斌", "凯", "旭", "阳",
    "宏", "亮", "帅", "东", "海", "波", "明", "宇", "兵", "洋", "晨", "锐",
    "昊", "然",
};
static const char *const given_female[] = {
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "玲", "婷", "雪", "琳",
    "颖", "怡", "萱", "涵", "梦", "璐", "慧", "倩", "洁", "燕", "蓉", "琪",
    "悦", "妍", "晶", "瑶", "月", "彤", "薇", "露", "蕾", "莉", "琴", "红",
    "梅", "兰", "英", "秀", "丹", "萍", "云", "凤", "春", "桂", "珍", "媛",
    "晴", "蝶",
};
static const char *const given_neutral[] = {
    "子", "一", "可", "文", "心", "乐", "安", "希", "语", "嘉", "思", "佳",
    "晓", "若", "欣", "天", "正", "新", "秋", "诗", "雨", "小", "金", "永",
    "家", "玉", "德", "清", "宁", "和", "顺", "福", "立", "世", "开", "远",
    "方", "光", "美", "星", "泓", "锦", "卓", "奕", "景", "骏", "铭", "逸",
    "辰", "瀚",
};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Two-character place names for townships and villages; a unit's name
 * is picked by its code, so every child of one village gets the same. */
static const char *const places[] = {
    "青石", "白马", "龙泉", "新场", "金桥", "柳林", "高桥", "黄土", "石桥",
    "永兴", "太平", "长安", "双河", "三江", "红岩", "大兴", "安乐", "福田",
    "清溪", "桂花", "中和", "花园", "复兴", "平安", "和平", "光明", "团结",
    "胜利", "新华", "东风", "云峰", "松林", "竹林", "桃源", "凤凰", "水口",
    "马鞍", "古城", "观音", "白鹤", "五里", "碧水", "沙坝", "双龙", "金龙",
    "乐山", "玉屏", "兴隆",
};

/* Province names by the first two digits of a code. */
static const struct {
    int code;
    const char *name;
} provinces[] = {
    {11, "北京市"}, {12, "天津市"}, {13, "河北省"}, {14, "山西省"},
    {15, "内蒙古自治区"}, {21, "辽宁省"}, {22, "吉林省"}, {23, "黑龙江省"},
    {31, "上海市"}, {32, "江苏省"}, {33, "浙江省"}, {34, "安徽省"},
    {35, "福建省"}, {36, "江西省"}, {37, "山东省"}, {41, "河南省"},
    {42, "湖北省"}, {43, "湖南省"}, {44, "广东省"}, {45, "广西壮族自治区"},
    {46, "海南省"}, {50, "重庆市"}, {51, "四川省"}, {52, "贵州省"},
    {53, "云南省"}, {54, "西藏自治区"}, {61, "陕西省"}, {62, "甘肃省"},
    {63, "青海省"}, {64, "宁夏回族自治区"}, {65, "新疆维吾尔自治区"},
};

/* Where migrant parents work. */
static const char *const work_places[] = {
    "广东省东莞市", "广东省深圳市", "广东省广州市", "广东省佛山市",
    "浙江省宁波市", "浙江省杭州市", "浙江省温州市", "江苏省苏州市",
    "江苏省无锡市", "福建省泉州市", "福建省厦门市", "四川省成都市",
    "重庆市", "上海市", "北京市", "新疆维吾尔自治区乌鲁木齐市",
};

static const char *const disability_types[] = {
    "肢体残疾", "视力残疾", "听力残疾", "言语残疾", "智力残疾", "精神残疾",
    "多重残疾",
};
static const char *const disability_levels[] = {"一级", "二级", "三级",
                                                "四级"};

static const char *const primary_grades[] = {"一年级", "二年级", "三年级",
                                             "四年级", "五年级", "六年级"};
static const char *const kinder_grades[] = {"幼儿园小班", "幼儿园中班",
                                            "幼儿园大班"};

/* Age bands of the quarterly table, in completed years, and their shares
 * (2018: 21.7 / 67.4 / 10.9%). Children leave the register at 16. */
static const int band_lo_years[3] = {0, 6, 14};
static const int band_hi_years[3] = {5, 13, 15};
static const double band_share[3] = {0.217, 0.674, 0.109};

/* ---------------------------------------------------------------------
 * The generator.
 * ------------------------------------------------------------------- */

struct gen {
    uint64_t s[4];          /* xoshiro256** state */
    code_t *villages;
    size_t nvillages;
    int ty, tm, td;         /* today */
    int32_t band_first[3];  /* birth day numbers per band, inclusive */
    int32_t band_last[3];
    uint32_t surname_cum[NSURNAMES];
    uint64_t *ids;          /* issued ID numbers' first 17 digits; 0 empty */
    size_t ids_cap, ids_n;
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(gen_t *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), n < 2^32 (multiply-shift; the bias is far below
 * anything a share test can see). */
static uint32_t rng_below(gen_t *g, uint32_t n)
{
    return (uint32_t)(((rng_next(g) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [0, 1). */
static double rng_unit(gen_t *g)
{
    return (double)(rng_next(g) >> 11) * 0x1.0p-53;
}

static bool rng_chance(gen_t *g, double p)
{
    return rng_unit(g) < p;
}

#define PICK(g, a) ((a)[rng_below((g), (uint32_t)NELEM(a))])

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int32_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int32_t z, int *y, int *m, int *d)
{
    z += 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    int doe = z - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

/* Today's month and day in year y, Feb 29 becoming Feb 28 in common
 * years: the last birthday date on which one turns a year older. */
static int32_t anniversary(const gen_t *g, int y)
{
    int d = g->td;
    if (d > month_days(y, g->tm))
        d = month_days(y, g->tm);
    return days_from_civil(y, g->tm, d);
}

static int age_on(const gen_t *g, int by, int bm, int bd)
{
    int age = g->ty - by;
    if (g->tm < bm || (g->tm == bm && g->td < bd))
        age--;
    return age;
}

/* GB 11643-1999 check character of 17 digits. */
static char id_check_char(const char *d17)
{
    static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3,
                              7, 9, 10, 5, 8, 4, 2};
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (d17[i] - '0') * w[i];
    return "10X98765432"[sum % 11];
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static int ids_grow(gen_t *g)
{
    size_t ncap = g->ids_cap ? g->ids_cap * 2 : 4096;
    uint64_t *n = calloc(ncap, sizeof *n);
    if (!n)
        return LX_ENOMEM;
    for (size_t i = 0; i < g->ids_cap; i++) {
        uint64_t k = g->ids[i];
        if (!k)
            continue;
        size_t j = mix64(k) & (ncap - 1);
        while (n[j])
            j = (j + 1) & (ncap - 1);
        n[j] = k;
    }
    free(g->ids);
    g->ids = n;
    g->ids_cap = ncap;
    return LX_OK;
}

/* Adds key (never 0) to the set of issued ID numbers: 1 when added, 0
 * when already there, or a negative error. */
static int ids_add(gen_t *g, uint64_t key)
{
    /* Grow at half full, so probe runs stay short. */
    if ((g->ids_n + 1) * 2 > g->ids_cap) {
        int rc = ids_grow(g);
        if (rc)
            return rc;
    }
    size_t mask = g->ids_cap - 1;
    size_t j = mix64(key) & mask;
    while (g->ids[j]) {
        if (g->ids[j] == key)
            return 0;
        j = (j + 1) & mask;
    }
    g->ids[j] = key;
    g->ids_n++;
    return 1;
}

gen_t *gen_new(uint64_t seed, const code_t *villages, size_t nvillages,
               uint32_t today)
{
    if (!villages || nvillages == 0 || nvillages > UINT32_MAX)
        return NULL;
    for (size_t i = 0; i < nvillages; i++)
        if (code_level(villages[i]) != LEVEL_VILLAGE)
            return NULL;
    int ty = (int)(today / 10000), tm = (int)(today / 100 % 100),
        td = (int)(today % 100);
    /* The oldest band must still give birth years the schema accepts. */
    if (ty < 1920 || ty > 2199 || tm < 1 || tm > 12 || td < 1
        || td > month_days(ty, tm))
        return NULL;

    gen_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->villages = malloc(nvillages * sizeof *g->villages);
    if (!g->villages) {
        free(g);
        return NULL;
    }
    memcpy(g->villages, villages, nvillages * sizeof *g->villages);
    g->nvillages = nvillages;
    g->ty = ty;
    g->tm = tm;
    g->td = td;

    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&x);

    /* Age in [lo, hi] years: born after the anniversary hi+1 years ago and
     * no later than the anniversary lo years ago. */
    for (int b = 0; b < 3; b++) {
        g->band_first[b] = anniversary(g, ty - band_hi_years[b] - 1) + 1;
        g->band_last[b] = anniversary(g, ty - band_lo_years[b]);
    }

    uint32_t cum = 0;
    for (size_t i = 0; i < NSURNAMES; i++) {
        cum += surnames[i].w;
        g->surname_cum[i] = cum;
    }
    return g;
}

void gen_destroy(gen_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gen_t *g = *self_p;
    free(g->villages);
    free(g->ids);
    free(g);
    *self_p = NULL;
}

/* ---------------------------------------------------------------------
 * One child, first as plain buffers, then as a record.
 * ------------------------------------------------------------------- */

enum { NAME_BYTES = 32, PHONE_BYTES = 12 };

/* Categories as bits, in the order they are listed in a record. */
enum {
    CAT_LEFT_BEHIND = 1u << 0,
    CAT_ORPHAN = 1u << 1,
    CAT_DE_FACTO = 1u << 2,
    CAT_DISABLED = 1u << 3,
    CAT_ILLNESS = 1u << 4,
    CAT_LOW_INCOME = 1u << 5,
    CAT_DROPOUT = 1u << 6,
};
static const char *const category_names[] = {
    "left_behind", "orphan", "de_facto_unsupported", "disabled",
    "serious_illness", "low_income", "dropout",
};

typedef enum {
    GUARD_GRANDPARENT, GUARD_RELATIVE, GUARD_INSTITUTION, GUARD_PARENT,
    GUARD_NONE,
} guard_t;
static const char *const guard_names[] = {
    "grandparent", "relative", "institution", "parent", "none",
};

/* The kinds of township by their digits: 001-099 subdistrict (街道),
 * 200-399 township (乡), the rest towns (镇) and the like. */
typedef struct {
    const char *place;  /* two characters, stable per township */
    const char *kind;   /* 街道, 乡 or 镇 */
    bool subdistrict;
} township_t;

typedef struct {
    char village[CODE_STRLEN + 1];
    township_t town;
    bool male;
    int by, bm, bd, age;
    char birth[11];
    char idnum[19];
    const char *surname;     /* the father's, so the child's too */
    char name[NAME_BYTES];
    const char *ethnicity;
    char address[160];
    unsigned cats;
    const char *left_behind_type;
    guard_t guard;
    char guardian_name[NAME_BYTES];
    const char *guardian_relation;
    char guardian_phone[PHONE_BYTES];
    bool guardian_capable;
    const char *father_status, *mother_status;
    const char *father_work, *mother_work;
    char father_phone[PHONE_BYTES], mother_phone[PHONE_BYTES];
    const char *school_status;
    char school_name[96];
    const char *grade;
    const char *health;
    const char *disability_type, *disability_level;
    const char *risk;
    char help_pairing[NAME_BYTES], proxy_parent[NAME_BYTES];
} child_t;

/* Appends s to the string of length len in out (capacity cap), cutting
 * it short rather than overflowing; returns the new length. The buffers
 * here are sized so that nothing is ever cut. */
static size_t append(char *out, size_t cap, size_t len, const char *s)
{
    size_t n = strlen(s);
    if (len + n >= cap)
        n = cap - 1 - len;
    memcpy(out + len, s, n);
    out[len + n] = '\0';
    return len + n;
}

static size_t append_uint(char *out, size_t cap, size_t len, unsigned v)
{
    char buf[12];
    int i = (int)sizeof buf - 1;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    return append(out, cap, len, buf + i);
}

static const char *pick_surname(gen_t *g)
{
    uint32_t r = rng_below(g, g->surname_cum[NSURNAMES - 1]);
    size_t lo = 0, hi = NSURNAMES - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->surname_cum[mid] > r)
            hi = mid;
        else
            lo = mid + 1;
    }
    return surnames[lo].s;
}

static const char *pick_given(gen_t *g, bool male)
{
    uint32_t nsex = male ? (uint32_t)NELEM(given_male)
                         : (uint32_t)NELEM(given_female);
    uint32_t i = rng_below(g, nsex + (uint32_t)NELEM(given_neutral));
    if (i < nsex)
        return male ? given_male[i] : given_female[i];
    return given_neutral[i - nsex];
}

/* A full name: the surname (a random one when NULL) and one given
 * character (30%) or two. */
static void make_name(gen_t *g, char out[NAME_BYTES], const char *surname,
                      bool male)
{
    if (!surname)
        surname = pick_surname(g);
    size_t n = append(out, NAME_BYTES, 0, surname);
    n = append(out, NAME_BYTES, n, pick_given(g, male));
    if (!rng_chance(g, 0.3))
        append(out, NAME_BYTES, n, pick_given(g, male));
}

static void make_phone(gen_t *g, char out[PHONE_BYTES])
{
    static const char second[] = {'3', '5', '8', '9'};
    out[0] = '1';
    out[1] = PICK(g, second);
    for (int i = 2; i < 11; i++)
        out[i] = (char)('0' + rng_below(g, 10));
    out[11] = '\0';
}

static const char *place_name(uint64_t unit)
{
    return places[mix64(unit) % NELEM(places)];
}

static const char *province_name(code_t village)
{
    int p = (int)(village / 10000000000ULL);
    for (size_t i = 0; i < NELEM(provinces); i++)
        if (provinces[i].code == p)
            return provinces[i].name;
    return "";
}

static township_t township_of(code_t village)
{
    unsigned t = (unsigned)(village / 1000 % 1000);
    township_t tw;
    tw.place = place_name(village / 1000);
    tw.subdistrict = t < 100;
    tw.kind = t < 100 ? "街道" : (t >= 200 && t < 400) ? "乡" : "镇";
    return tw;
}

static void make_address(gen_t *g, child_t *c, code_t village)
{
    /* Village digits 001-199 are residents' committees, 200-399 villages. */
    bool urban = village % 1000 < 200;
    char *a = c->address;
    size_t cap = sizeof c->address, n = 0;
    n = append(a, cap, n, province_name(village));
    n = append(a, cap, n, c->town.place);
    n = append(a, cap, n, c->town.kind);
    n = append(a, cap, n, place_name(village));
    n = append(a, cap, n, urban ? "社区第" : "村第");
    n = append_uint(a, cap, n, 1 + rng_below(g, 12));
    n = append(a, cap, n, urban ? "居民小组" : "村民小组");
    n = append_uint(a, cap, n, 1 + rng_below(g, 60));
    append(a, cap, n, "号");
}

static void put_digits(char *out, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Birth date in a band by the national shares, then a unique ID number
 * whose sequence digit carries the sex. */
static int make_birth_and_id(gen_t *g, child_t *c)
{
    double u = rng_unit(g);
    int band = u < band_share[0] ? 0
               : u < band_share[0] + band_share[1] ? 1 : 2;
    for (int attempt = 0; attempt < 64; attempt++) {
        int32_t span = g->band_last[band] - g->band_first[band] + 1;
        int32_t day = g->band_first[band] + (int32_t)rng_below(g, (uint32_t)span);
        civil_from_days(day, &c->by, &c->bm, &c->bd);
        c->age = age_on(g, c->by, c->bm, c->bd);
        assert(c->age >= band_lo_years[band] && c->age <= band_hi_years[band]);
        put_digits(c->birth, (unsigned)c->by, 4);
        c->birth[4] = '-';
        put_digits(c->birth + 5, (unsigned)c->bm, 2);
        c->birth[7] = '-';
        put_digits(c->birth + 8, (unsigned)c->bd, 2);
        c->birth[10] = '\0';

        /* Sequence numbers: tens from 00..99, the last digit odd for boys
         * and even for girls; "000" is never issued. A few random tries,
         * then every free sequence of that day, then another day. */
        for (int t = 0; t < 532; t++) {
            unsigned seq;
            if (t < 32) {
                seq = rng_below(g, 100) * 10 + rng_below(g, 5) * 2
                      + (c->male ? 1 : 0);
            } else {
                seq = (unsigned)(t - 32) * 2 + (c->male ? 1 : 0);
            }
            if (seq == 0)
                continue;
            /* The county (first six digits of the code), the birth date
             * and the sequence. */
            char d17[18];
            memcpy(d17, c->village, 6);
            put_digits(d17 + 6, (unsigned)c->by, 4);
            put_digits(d17 + 10, (unsigned)c->bm, 2);
            put_digits(d17 + 12, (unsigned)c->bd, 2);
            put_digits(d17 + 14, seq, 3);
            d17[17] = '\0';
            uint64_t key = 0;
            for (int i = 0; i < 17; i++)
                key = key * 10 + (uint64_t)(d17[i] - '0');
            int rc = ids_add(g, key);
            if (rc < 0)
                return rc;
            if (rc == 1) {
                memcpy(c->idnum, d17, 17);
                c->idnum[17] = id_check_char(d17);
                c->idnum[18] = '\0';
                return LX_OK;
            }
        }
    }
    /* Every sequence of 64 days taken: only a generator asked for far
     * more children than its county can have gets here. */
    return LX_EFULL;
}

static void set_migrant(gen_t *g, const char **status, const char **work,
                        char phone[PHONE_BYTES], const char *same_as)
{
    *status = "migrant_worker";
    /* Couples often work in the same city. */
    *work = same_as && rng_chance(g, 0.6) ? same_as : PICK(g, work_places);
    make_phone(g, phone);
}

/* A guardian of the given type. Paternal grandfathers, uncles and aunts
 * share the child's surname. */
static void set_guardian(gen_t *g, child_t *c, guard_t type)
{
    c->guard = type;
    if (type == GUARD_NONE)
        return;
    const char *rel;
    const char *surname = NULL;
    bool male;
    double u = rng_unit(g);
    switch (type) {
    case GUARD_GRANDPARENT:
        if (u < 0.40) {
            rel = "祖母";
            male = false;
        } else if (u < 0.70) {
            rel = "祖父";
            male = true;
            surname = c->surname;
        } else if (u < 0.88) {
            rel = "外祖母";
            male = false;
        } else {
            rel = "外祖父";
            male = true;
        }
        break;
    case GUARD_RELATIVE:
        if (u < 0.30) {
            rel = "叔叔";
            male = true;
            surname = c->surname;
        } else if (u < 0.55) {
            rel = "姑姑";
            male = false;
            surname = c->surname;
        } else if (u < 0.75) {
            rel = "舅舅";
            male = true;
        } else {
            rel = "姨妈";
            male = false;
        }
        break;
    case GUARD_PARENT:
        male = u < 0.4;
        rel = male ? "父亲" : "母亲";
        if (male)
            surname = c->surname;
        break;
    default:
        rel = "福利机构工作人员";
        male = u < 0.3;
        break;
    }
    c->guardian_relation = rel;
    make_name(g, c->guardian_name, surname, male);
    make_phone(g, c->guardian_phone);
    c->guardian_capable = rng_chance(g, 0.95);
}

static void make_family(gen_t *g, child_t *c)
{
    double u = rng_unit(g);
    if (u < 0.010) {
        /* Orphan: both parents dead, in a relative's or an institution's
         * care; not a left-behind child. */
        c->cats |= CAT_ORPHAN;
        c->father_status = c->mother_status = "deceased";
        double v = rng_unit(g);
        set_guardian(g, c, v < 0.70 ? GUARD_GRANDPARENT
                           : v < 0.90 ? GUARD_RELATIVE : GUARD_INSTITUTION);
    } else if (u < 0.025) {
        /* De facto unsupported: parents unable to care, or one dead or
         * missing and the other unable. */
        c->cats |= CAT_DE_FACTO;
        double v = rng_unit(g);
        if (v < 0.4) {
            c->father_status = c->mother_status = "incapable";
        } else if (v < 0.7) {
            c->father_status = "deceased";
            c->mother_status = "unknown";
        } else {
            c->father_status = "incapable";
            c->mother_status = "unknown";
        }
        double w = rng_unit(g);
        set_guardian(g, c, w < 0.75 ? GUARD_GRANDPARENT
                           : w < 0.95 ? GUARD_RELATIVE : GUARD_INSTITUTION);
    } else if (u < 0.080) {
        /* In difficulty at home: a parent is there and able. */
        double v = rng_unit(g);
        c->cats |= v < 0.65 ? CAT_LOW_INCOME
                   : v < 0.85 ? CAT_DISABLED : CAT_ILLNESS;
        c->mother_status = "at_home";
        if (rng_chance(g, 0.3)) {
            set_migrant(g, &c->father_status, &c->father_work,
                        c->father_phone, NULL);
        } else {
            c->father_status = "at_home";
            make_phone(g, c->father_phone);
        }
        make_phone(g, c->mother_phone);
        set_guardian(g, c, GUARD_PARENT);
    } else {
        c->cats |= CAT_LEFT_BEHIND;
        if (rng_chance(g, 0.88)) {
            c->left_behind_type = "both_parents_away";
            set_migrant(g, &c->father_status, &c->father_work,
                        c->father_phone, NULL);
            set_migrant(g, &c->mother_status, &c->mother_work,
                        c->mother_phone, c->father_work);
        } else {
            c->left_behind_type = "one_away_other_incapable";
            if (rng_chance(g, 0.7)) {
                set_migrant(g, &c->father_status, &c->father_work,
                            c->father_phone, NULL);
                c->mother_status = "incapable";
            } else {
                set_migrant(g, &c->mother_status, &c->mother_work,
                            c->mother_phone, NULL);
                c->father_status = "incapable";
            }
        }
        double v = rng_unit(g);
        set_guardian(g, c, v < 0.960 ? GUARD_GRANDPARENT
                           : v < 0.990 ? GUARD_RELATIVE
                           : v < 0.9985 ? GUARD_INSTITUTION : GUARD_NONE);
        /* Left-behind children in difficulty as well; with the group
         * above this gives about 5% low-income, 1.5% disabled and 1%
         * seriously ill in all. */
        if (rng_chance(g, 0.015))
            c->cats |= CAT_LOW_INCOME;
        if (rng_chance(g, 0.004))
            c->cats |= CAT_DISABLED;
        if (rng_chance(g, 0.002))
            c->cats |= CAT_ILLNESS;
    }
}

/* A school of the child's township: a subdistrict's schools go by its
 * name, a town's are its central schools. */
static void school_name(child_t *c, const char *subdistrict_kind,
                        const char *town_kind)
{
    char *s = c->school_name;
    size_t cap = sizeof c->school_name, n = 0;
    n = append(s, cap, n, c->town.place);
    if (!c->town.subdistrict)
        n = append(s, cap, n, c->town.kind);
    append(s, cap, n, c->town.subdistrict ? subdistrict_kind : town_kind);
}

static void make_school(gen_t *g, child_t *c, code_t village)
{
    static const char *const junior[] = {"初一", "初二", "初三"};
    int age = c->age;
    if (age <= 2) {
        c->school_status = "not_school_age";
        return;
    }
    if (age <= 5) {
        if (!rng_chance(g, 0.80)) {
            c->school_status = "not_school_age";
            return;
        }
        c->school_status = "preschool";
        c->grade = kinder_grades[age - 3];
        school_name(c, "幼儿园", "中心幼儿园");
        return;
    }
    double u = rng_unit(g);
    if (u < 0.01) {
        c->school_status = "dropped_out";
        c->cats |= CAT_DROPOUT;
        return;
    }
    c->school_status = u < 0.76 ? "enrolled" : "boarding";
    if (age <= 11) {
        c->grade = primary_grades[age - 6];
        school_name(c, "小学", "中心小学");
    } else if (age <= 14 || rng_chance(g, 0.5)) {
        c->grade = junior[age <= 14 ? age - 12 : 2];
        school_name(c, "中学", "中学");
    } else {
        /* Senior school is in the county town. */
        c->grade = "高一";
        size_t n = append(c->school_name, sizeof c->school_name, 0,
                          place_name(village / 1000000));
        append(c->school_name, sizeof c->school_name, n, "第一中学");
    }
}

/* Ill and disabled children are about 2.5% of all; the others are
 * healthy at 97%, which gives about 95% in all. */
static void make_health(gen_t *g, child_t *c)
{
    double u = rng_unit(g);
    if (c->cats & CAT_ILLNESS)
        c->health = "较差";
    else if (c->cats & CAT_DISABLED)
        c->health = "一般";
    else
        c->health = u < 0.97 ? "健康" : u < 0.995 ? "一般" : "较差";
    if (c->cats & CAT_DISABLED) {
        c->disability_type = PICK(g, disability_types);
        c->disability_level = PICK(g, disability_levels);
    }
}

static int put_str(record_t *r, const char *name, const char *s)
{
    if (!s || !*s)
        return LX_OK;
    /* record_put copies, so the field may borrow its name and value. */
    field_t f = {0};
    f.name = (char *)name;
    f.val.kind = VAL_STR;
    f.val.s = (char *)s;
    return record_put(r, &f);
}

static int put_bool(record_t *r, const char *name, bool b)
{
    field_t f = {0};
    f.name = (char *)name;
    f.val.kind = VAL_BOOL;
    f.val.b = b;
    return record_put(r, &f);
}

static int put_categories(record_t *r, unsigned cats)
{
    const char *items[NELEM(category_names)];
    uint32_t n = 0;
    for (size_t i = 0; i < NELEM(category_names); i++)
        if (cats & (1u << i))
            items[n++] = category_names[i];
    field_t f = {0};
    f.name = (char *)"categories";
    f.val.kind = VAL_LIST;
    f.val.items = (char **)items;
    f.val.n = n;
    return record_put(r, &f);
}

/* Writes the child's fields in name order, which keeps record_put's
 * sorted inserts at the end of the array. */
static int child_to_record(const child_t *c, record_t *r)
{
    bool guarded = c->guard != GUARD_NONE;
    int rc = LX_OK;
#define P(expr) do { if ((rc = (expr)) != LX_OK) return rc; } while (0)
    P(put_str(r, "birth_date", c->birth));
    P(put_categories(r, c->cats));
    P(put_str(r, "disability_level", c->disability_level));
    P(put_str(r, "disability_type", c->disability_type));
    P(put_str(r, "ethnicity", c->ethnicity));
    P(put_str(r, "father_phone", c->father_phone));
    P(put_str(r, "father_status", c->father_status));
    P(put_str(r, "father_work_place", c->father_work));
    P(put_str(r, "gender", c->male ? "male" : "female"));
    P(put_str(r, "grade", c->grade));
    if (guarded)
        P(put_bool(r, "guardian_capable", c->guardian_capable));
    P(put_str(r, "guardian_name", c->guardian_name));
    P(put_str(r, "guardian_phone", c->guardian_phone));
    P(put_str(r, "guardian_relation", c->guardian_relation));
    P(put_str(r, "guardian_type", guard_names[c->guard]));
    P(put_str(r, "health_status", c->health));
    P(put_str(r, "help_pairing", c->help_pairing));
    P(put_str(r, "household_address", c->address));
    P(put_str(r, "id_number", c->idnum));
    P(put_str(r, "left_behind_type", c->left_behind_type));
    P(put_str(r, "mother_phone", c->mother_phone));
    P(put_str(r, "mother_status", c->mother_status));
    P(put_str(r, "mother_work_place", c->mother_work));
    P(put_str(r, "name", c->name));
    P(put_str(r, "proxy_parent", c->proxy_parent));
    P(put_str(r, "risk_level", c->risk));
    P(put_str(r, "school_name", c->school_name));
    P(put_str(r, "school_status", c->school_status));
    P(put_str(r, "status", "active"));
    P(put_str(r, "village_code", c->village));
#undef P
    return rc;
}

int gen_child(gen_t *g, record_t **out)
{
    assert(g && out);
    *out = NULL;
    child_t c;
    memset(&c, 0, sizeof c);

    code_t village = g->villages[rng_below(g, (uint32_t)g->nvillages)];
    code_fmt(village, c.village);
    c.town = township_of(village);
    c.male = rng_chance(g, 0.545);
    int rc = make_birth_and_id(g, &c);
    if (rc)
        return rc;

    c.surname = pick_surname(g);
    make_name(g, c.name, c.surname, c.male);

    double u = rng_unit(g);
    c.ethnicity = u < 0.930 ? "汉族"
                  : u < 0.960 ? "彝族"
                  : u < 0.980 ? "藏族"
                  : u < 0.985 ? "羌族"
                  : u < 0.990 ? "苗族"
                  : u < 0.995 ? "回族" : "土家族";
    make_address(g, &c, village);
    make_family(g, &c);
    make_school(g, &c, village);
    make_health(g, &c);

    u = rng_unit(g);
    c.risk = u < 0.80 ? "low" : u < 0.97 ? "medium" : "high";
    /* A child under 16 with no guardian is an alert in itself. */
    if (c.guard == GUARD_NONE)
        c.risk = "high";
    if (rng_chance(g, 0.30))
        make_name(g, c.help_pairing, NULL, rng_chance(g, 0.5));
    if (rng_chance(g, 0.30))
        make_name(g, c.proxy_parent, NULL, rng_chance(g, 0.4));

    record_t *r = record_new(NULL);
    if (!r)
        return LX_ENOMEM;
    rc = child_to_record(&c, r);
    if (rc) {
        record_destroy(&r);
        return rc;
    }
    *out = r;
    return LX_OK;
}
