/* Unit tests for common/hlc: timestamps stay strictly increasing whatever
 * the wall clock does, remote timestamps are folded in, a remote clock
 * too far ahead is refused without touching ours, and the text form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/hlc.h"
#include "xorshift.h"

#define SKEW 100u /* ms, for the skew tests */

static void test_make_fields(void **state)
{
    (void)state;
    hlc_t h = hlc_make(1234567, 42);
    assert_int_equal(hlc_ms(h), 1234567);
    assert_int_equal(hlc_logical(h), 42);
    /* The counter is 16 bits: higher bits do not leak into the ms. */
    h = hlc_make(7, 0x12345);
    assert_int_equal(hlc_ms(h), 7);
    assert_int_equal(hlc_logical(h), 0x2345);
    /* Integer order is (ms, logical) order. */
    assert_true(hlc_make(1, 0) > hlc_make(0, 0xffff));
    assert_true(hlc_make(5, 2) > hlc_make(5, 1));
    assert_true(hlc_make(0, 0) == 0);
    /* 48 bits of milliseconds survive. */
    uint64_t max_ms = (1ULL << 48) - 1;
    assert_int_equal(hlc_ms(hlc_make(max_ms, 0xffff)), max_ms);
    assert_int_equal(hlc_logical(hlc_make(max_ms, 0xffff)), 0xffff);
}

static void test_now_wall_still(void **state)
{
    (void)state;
    hlc_clock_t c;
    hlc_init(&c, 0, HLC_DEFAULT_SKEW_MS);
    assert_int_equal(hlc_now(&c, 1000), hlc_make(1000, 0));
    assert_int_equal(hlc_now(&c, 1000), hlc_make(1000, 1));
    assert_int_equal(hlc_now(&c, 1000), hlc_make(1000, 2));
    hlc_t prev = hlc_make(1000, 2);
    for (uint32_t i = 3; i < 1000; i++) {
        hlc_t t = hlc_now(&c, 1000);
        assert_true(t > prev);
        assert_int_equal(hlc_ms(t), 1000);
        assert_int_equal(hlc_logical(t), i);
        prev = t;
    }
    assert_int_equal(c.last, prev);
}

static void test_now_wall_backwards(void **state)
{
    (void)state;
    hlc_clock_t c;
    hlc_init(&c, 0, HLC_DEFAULT_SKEW_MS);
    hlc_t a = hlc_now(&c, 5000);
    assert_int_equal(a, hlc_make(5000, 0));
    /* The wall clock steps back by a second: the HLC keeps its ms and
     * ticks the counter. */
    hlc_t b = hlc_now(&c, 4000);
    assert_true(b > a);
    assert_int_equal(b, hlc_make(5000, 1));
    hlc_t d = hlc_now(&c, 0);
    assert_int_equal(d, hlc_make(5000, 2));
    /* Catching up to the old time is still not enough. */
    hlc_t e = hlc_now(&c, 5000);
    assert_int_equal(e, hlc_make(5000, 3));
    /* Passing it resets the counter. */
    hlc_t f = hlc_now(&c, 5001);
    assert_int_equal(f, hlc_make(5001, 0));
}

static void test_now_wall_jumps(void **state)
{
    (void)state;
    hlc_clock_t c;
    hlc_init(&c, 0, HLC_DEFAULT_SKEW_MS);
    hlc_now(&c, 1000);
    hlc_now(&c, 1000);
    hlc_t a = hlc_now(&c, 1000);
    assert_int_equal(hlc_logical(a), 2);
    /* A jump forward by an hour takes the new time, counter reset. */
    hlc_t b = hlc_now(&c, 1000 + 3600000);
    assert_int_equal(b, hlc_make(1000 + 3600000, 0));
    hlc_t d = hlc_now(&c, 1000 + 3600000);
    assert_int_equal(d, hlc_make(1000 + 3600000, 1));
    /* One ms later: counter resets again. */
    assert_int_equal(hlc_now(&c, 1000 + 3600001), hlc_make(1000 + 3600001, 0));
}

static void test_init_last(void **state)
{
    (void)state;
    hlc_clock_t c;
    /* A restarted clock never issues a timestamp <= the saved one, even
     * when the wall clock is behind it. */
    hlc_t saved = hlc_make(9000, 7);
    hlc_init(&c, saved, 1234);
    assert_int_equal(c.last, saved);
    assert_int_equal(c.max_skew_ms, 1234);
    assert_int_equal(hlc_now(&c, 1000), hlc_make(9000, 8));
    assert_int_equal(hlc_now(&c, 9000), hlc_make(9000, 9));
    assert_int_equal(hlc_now(&c, 9001), hlc_make(9001, 0));
}

static void test_counter_carry(void **state)
{
    (void)state;
    hlc_clock_t c;
    /* A full counter carries into the ms rather than wrapping. */
    hlc_init(&c, hlc_make(1000, 0xfffe), HLC_DEFAULT_SKEW_MS);
    hlc_t a = hlc_now(&c, 1000);
    assert_int_equal(a, hlc_make(1000, 0xffff));
    hlc_t b = hlc_now(&c, 1000);
    assert_true(b > a);
    assert_int_equal(b, hlc_make(1001, 0));
    hlc_t d = hlc_now(&c, 1000);
    assert_int_equal(d, hlc_make(1001, 1));
}

/* A wall clock that stands, steps back, creeps and jumps at random: the
 * HLC must increase strictly, never fall behind the wall, and never run
 * ahead of the highest wall time seen by more than its counter. */
static void test_now_random_wall(void **state)
{
    (void)state;
    hlc_clock_t c;
    hlc_init(&c, 0, HLC_DEFAULT_SKEW_MS);
    uint64_t s = 0x2545f4914f6cdd1dULL;
    uint64_t wall = 1700000000000ULL, max_wall = 0;
    hlc_t prev = 0;
    for (int i = 0; i < 100000; i++) {
        uint64_t r = xorshift64(&s);
        switch (r % 8) {
        case 0: case 1: case 2: break;                  /* stands */
        case 3: case 4: wall += r >> 60; break;         /* creeps */
        case 5: wall -= (r >> 32) % 5000; break;        /* steps back */
        case 6: wall += (r >> 32) % 100000; break;      /* jumps */
        case 7: wall -= (r >> 32) % 10; break;
        }
        if (wall > max_wall)
            max_wall = wall;
        hlc_t t = hlc_now(&c, wall);
        if (t <= prev)
            fail_msg("step %d: %llu after %llu", i, (unsigned long long)t,
                     (unsigned long long)prev);
        assert_true(hlc_ms(t) >= wall);
        assert_int_equal(hlc_ms(t), max_wall);
        prev = t;
    }
}

static void test_recv_folds(void **state)
{
    (void)state;
    hlc_clock_t c;
    hlc_init(&c, 0, HLC_DEFAULT_SKEW_MS);
    hlc_now(&c, 1000);
    /* A remote a little ahead of us. */
    hlc_t remote = hlc_make(1200, 5);
    assert_int_equal(hlc_recv(&c, remote, 1000), LX_OK);
    assert_int_equal(c.last, remote);
    hlc_t t = hlc_now(&c, 1000);
    assert_true(t > remote);
    assert_int_equal(t, hlc_make(1200, 6));
    /* A remote behind us changes nothing, and the next stamp is still
     * ahead of both. */
    assert_int_equal(hlc_recv(&c, hlc_make(900, 3), 1000), LX_OK);
    assert_int_equal(c.last, t);
    assert_int_equal(hlc_now(&c, 1000), hlc_make(1200, 7));
    /* A remote equal to our last: the next stamp is past it. */
    hlc_t last = c.last;
    assert_int_equal(hlc_recv(&c, last, 1000), LX_OK);
    assert_true(hlc_now(&c, 1000) > last);
    /* A remote one tick ahead: the next stamp passes it too. */
    last = c.last;
    assert_int_equal(hlc_recv(&c, last + 1, 1000), LX_OK);
    assert_int_equal(c.last, last + 1);
    assert_int_equal(hlc_now(&c, 1000), last + 2);
    /* Once the wall clock passes the remote, wall time wins again. */
    assert_int_equal(hlc_now(&c, 1300), hlc_make(1300, 0));
}

static void test_recv_skew(void **state)
{
    (void)state;
    hlc_clock_t c;
    hlc_init(&c, 0, SKEW);
    hlc_t mine = hlc_now(&c, 1000);
    hlc_clock_t before = c;

    /* One ms past the bound: refused, and the clock is as it was. */
    hlc_t far = hlc_make(1000 + SKEW + 1, 0);
    assert_int_equal(hlc_recv(&c, far, 1000), LX_ESKEW);
    assert_memory_equal(&c, &before, sizeof c);
    hlc_t t = hlc_now(&c, 1000);
    assert_true(t < far);
    assert_int_equal(t, mine + 1);

    /* Far in the future, and the largest timestamp there is. */
    before = c;
    assert_int_equal(hlc_recv(&c, hlc_make(1ULL << 40, 0), 1000), LX_ESKEW);
    assert_int_equal(hlc_recv(&c, UINT64_MAX, 1000), LX_ESKEW);
    assert_memory_equal(&c, &before, sizeof c);

    /* Exactly at the bound (any counter within that ms): accepted. */
    hlc_t edge = hlc_make(1000 + SKEW, 0xffff);
    assert_int_equal(hlc_recv(&c, edge, 1000), LX_OK);
    assert_int_equal(c.last, edge);
    assert_true(hlc_now(&c, 1000) > edge);

    /* The bound moves with the wall clock passed in. */
    hlc_clock_t d;
    hlc_init(&d, 0, SKEW);
    assert_int_equal(hlc_recv(&d, hlc_make(5000, 0), 4899), LX_ESKEW);
    assert_int_equal(d.last, 0);
    assert_int_equal(hlc_recv(&d, hlc_make(5000, 0), 4900), LX_OK);
    assert_int_equal(d.last, hlc_make(5000, 0));

    /* With no skew allowed, only remotes at or behind the wall pass. */
    hlc_clock_t z;
    hlc_init(&z, 0, 0);
    assert_int_equal(hlc_recv(&z, hlc_make(1001, 0), 1000), LX_ESKEW);
    assert_int_equal(hlc_recv(&z, hlc_make(1000, 9), 1000), LX_OK);
    assert_int_equal(z.last, hlc_make(1000, 9));
}

static void test_fmt(void **state)
{
    (void)state;
    char buf[64];
    assert_ptr_equal(hlc_fmt(hlc_make(0, 0), buf, sizeof buf), buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z+0");
    assert_int_equal(strncmp(buf, "1970-01-01T00:00:00.000Z", 24), 0);

    /* 2026-11-23T03:23:27.123Z is 1795404207 s after the epoch. */
    hlc_fmt(hlc_make(1795404207123ULL, 5), buf, sizeof buf);
    assert_string_equal(buf, "2026-11-23T03:23:27.123Z+5");

    /* A leap day, the last ms of a second, a full counter. */
    hlc_fmt(hlc_make(951868799999ULL, 0xffff), buf, sizeof buf);
    assert_string_equal(buf, "2000-02-29T23:59:59.999Z+65535");

    /* Milliseconds keep their leading zeros. */
    hlc_fmt(hlc_make(1007, 1), buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:01.007Z+1");

    /* The largest timestamp fits the documented 40 bytes. */
    char small[40];
    hlc_fmt(UINT64_MAX, small, sizeof small);
    assert_true(strlen(small) < sizeof small);
    assert_non_null(strstr(small, "Z+65535"));

    /* A short buffer is cut, not overrun, and stays a string. */
    char tiny[11];
    memset(tiny, 'x', sizeof tiny);
    hlc_fmt(hlc_make(0, 0), tiny, sizeof tiny);
    assert_string_equal(tiny, "1970-01-01");
}

static void test_wall_ms(void **state)
{
    (void)state;
    uint64_t before = (uint64_t)time(NULL) * 1000u;
    uint64_t w = hlc_wall_ms();
    uint64_t after = ((uint64_t)time(NULL) + 1) * 1000u;
    assert_in_range(w, before, after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_fields),
        cmocka_unit_test(test_now_wall_still),
        cmocka_unit_test(test_now_wall_backwards),
        cmocka_unit_test(test_now_wall_jumps),
        cmocka_unit_test(test_init_last),
        cmocka_unit_test(test_counter_carry),
        cmocka_unit_test(test_now_random_wall),
        cmocka_unit_test(test_recv_folds),
        cmocka_unit_test(test_recv_skew),
        cmocka_unit_test(test_fmt),
        cmocka_unit_test(test_wall_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
