"""The API checks of test_api.sh, against running nodes (env: URL_X, CA_X,
URL_V1, CA_V1, TOK_*, LIANXIN, TREE, X, V1, V2). Every wait is bounded."""
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse

E = os.environ
X, V1, V2 = E["X"], E["V1"], E["V2"]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def conn(url, ca):
    u = urllib.parse.urlparse(url)
    ctx = ssl.create_default_context(cafile=ca)
    return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)


CONNS = {}


def call(method, path, token=None, purpose=None, body=None, node="X", raw=None):
    """One request on a kept-alive connection: (status, parsed JSON or text)."""
    url, ca = (E["URL_X"], E["CA_X"]) if node == "X" else (E["URL_V1"], E["CA_V1"])
    c = CONNS.get(node) or conn(url, ca)
    CONNS[node] = c
    h = {}
    if token:
        h["Authorization"] = "Bearer " + token
    if purpose:
        h["X-Purpose"] = urllib.parse.quote(purpose)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        h["Content-Type"] = "application/json"
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
    except (http.client.HTTPException, OSError):
        CONNS.pop(node, None)
        raise
    if r.getheader("Connection", "").lower() == "close":
        CONNS.pop(node, None)
    ctype = r.getheader("Content-Type", "")
    if ctype.startswith("application/json"):
        return r.status, json.loads(text)
    return r.status, text


def lx(*args):
    return subprocess.run([E["LIANXIN"], *args], capture_output=True, text=True, check=True).stdout


def data(code):
    return os.path.join(E["TREE"], code, "data")


def wait_for(what, fn, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    fail("timed out after %ds waiting for %s" % (timeout, what))


def record_at(code, rid):
    try:
        return json.loads(lx("child", "get", "--data", data(code), rid, "--json"))
    except subprocess.CalledProcessError:
        return None


def idnum(s17):
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return s17 + "10X98765432"[sum(int(a) * b for a, b in zip(s17, w)) % 11]


EDU, CIVIL, POLICE = E["TOK_EDU"], E["TOK_CIVIL"], E["TOK_POLICE"]
V1OP, VOP = E["TOK_V1OP"], E["TOK_VOP"]
ID = idnum("51012120150301123")

# --- tokens ---
s, b = call("GET", "/api/v1/status")
check(s == 401 and "token" in b["error"], "no token: %s %s" % (s, b))
s, b = call("GET", "/api/v1/status", token="lx_not-a-token")
check(s == 401, "a wrong token: %s" % s)
c = conn(E["URL_X"], E["CA_X"])
c.request("GET", "/api/v1/status")
r = c.getresponse()
r.read()
check(r.getheader("WWW-Authenticate", "").startswith("Bearer"), "401 names the scheme")
c.request("PUT", "/api/v1/status", body=b"{}", headers={"Authorization": "Bearer " + E["TOK_EDU"]})
r = c.getresponse()
r.read()
check(r.status == 405 and r.getheader("Allow") == "GET", "405 with Allow: %s" % r.status)
c.close()
s, b = call("GET", "/api/v1/status", token=EDU)
check(s == 200 and b["code"] == X and b["level"] == "county", "status: %s %s" % (s, b))
cli = json.loads(lx("status", "--data", data(X), "--json"))
check(set(b) == set(cli) and b["running"], "the API's status is the command's: %s" % sorted(b))
s, b = call("GET", "/healthz")
check(s == 200 and b["status"] == "ok", "healthz")

# --- a child entered at the village through its own API ---
child = {"village_code": V1, "name": "王小明", "gender": "male", "birth_date": "2015-03-01",
         "id_number": ID, "guardian_phone": "13800001234", "guardian_type": "grandparent",
         "categories": ["left_behind"], "risk_level": "medium"}
s, b = call("POST", "/api/v1/children", token=VOP, body=child, node="V1")
check(s == 201 and b["id"], "create at the village: %s %s" % (s, b))
rid = b["id"]
wait_for("the child at the county", lambda: record_at(X, rid))

# --- reads: purpose, masks, fields ---
path = "/api/v1/children/" + rid
s, b = call("GET", path, token=EDU)
check(s == 403 and "X-Purpose" in b["error"], "a read without a purpose: %s %s" % (s, b))
s, b = call("GET", path, token=EDU, purpose="school enrolment check 入学核查")
check(s == 200, "education read: %s %s" % (s, b))
check(b["id_number"] == ID[:4] + "*" * 10 + ID[-4:], "ID number masked: %s" % b["id_number"])
check(b["guardian_phone"] == "*******1234", "phone masked: %s" % b["guardian_phone"])
check(b["name"] == "王小明", "the name is readable by education")
s, b = call("GET", path, token=POLICE, purpose="household check")
check(s == 200 and b["id_number"] == ID, "public security reads the ID number unmasked")
s, b = call("GET", path + "?fields=gender,village_code", token=EDU)
check(s == 200 and set(b) == {"id", "gender", "village_code"},
      "non-personal fields without a purpose: %s %s" % (s, b))
s, b = call("GET", "/api/v1/children/nosuchid", token=EDU, purpose="x")
check(s == 404, "unknown id: %s" % s)

# --- writes: rights by field, the correction reaches the village ---
s, b = call("PATCH", path, token=EDU, body={"name": "改名"})
check(s == 403 and "name" in b["error"], "education may not write name: %s %s" % (s, b))
s, b = call("PATCH", path, token=EDU, body={"school_status": "enrolled", "grade": "5"},
            purpose="school enrolment")
check(s == 200 and b["changed"] >= 2, "education correction: %s %s" % (s, b))
r = wait_for("the correction at the village",
             lambda: (lambda x: x if x and x.get("school_status") == "enrolled" else None)(
                 record_at(V1, rid)))
vers = json.loads(lx("child", "get", "--data", data(V1), rid, "--json", "--versions")) \
    if "--versions" in lx("child", "--help") else None
if vers:
    check("education" in vers["_versions"]["school_status"]["author"],
          "the correction's author is the department: %s" % vers["_versions"]["school_status"])

# --- bad bodies: each named, the node serving on ---
s, b = call("PATCH", path, token=CIVIL, raw=b'{"school_status": ')
check(s == 400 and "line" in b["error"], "bad JSON: %s %s" % (s, b))
s, b = call("PATCH", path, token=CIVIL, body={"favourite_colour": "blue"})
check(s == 400 and "favourite_colour" in b["error"], "unknown field: %s %s" % (s, b))
s, b = call("PATCH", path, token=CIVIL, body={"gender": 5})
check(s == 400 and "gender" in b["error"], "wrong type: %s %s" % (s, b))
s, b = call("PATCH", path, token=CIVIL, body={"gender": "robot"})
check(s == 400 and "gender" in b["error"], "bad enum: %s %s" % (s, b))
s, b = call("PATCH", path, token=CIVIL, body=["gender", "male"])
check(s == 400 and "object" in b["error"], "not an object: %s %s" % (s, b))
s, b = call("PATCH", path, token=CIVIL, body={"id": "other"})
check(s == 400 and "id" in b["error"], "writing the id: %s %s" % (s, b))
s, b = call("PATCH", path, token=CIVIL, raw=b'{"x_note": "' + b"a" * (1 << 20) + b'"}')
check(s == 413 and "larger" in b["error"], "an oversized body, answered in JSON: %s" % s)
try:
    s, b = call("PATCH", path, token=CIVIL, raw=b'{"x_note": "' + b"a" * (3 << 20) + b'"}')
    check(s == 413, "a body past twice the cap: %s" % s)
except (http.client.HTTPException, OSError):
    CONNS.pop("X", None)  # the server may close the connection on a body this size
s, b = call("GET", "/healthz")
check(s == 200, "the node serves on after bad bodies")

# --- scope: a token for one village sees nothing of another ---
other = dict(child, village_code=V2, name="赵小红", gender="female", id_number=None)
del other["id_number"]
s, b = call("POST", "/api/v1/children", token=CIVIL, body=other)
check(s == 201, "create at the county for village 2: %s %s" % (s, b))
rid2 = b["id"]
s, b = call("GET", "/api/v1/children/" + rid2, token=V1OP, purpose="x")
check(s == 404, "outside the token's scope: %s" % s)
s, b = call("POST", "/api/v1/children", token=V1OP, body=other)
check(s == 400 and "scope" in b["error"], "creating outside the scope: %s %s" % (s, b))
s, b = call("GET", "/api/v1/children?fields=village_code", token=V1OP)
check(s == 200 and all(i["village_code"] == V1 for i in b["items"]), "list in scope: %s" % b)

# --- paging and filters ---
for i in range(5):
    s, b = call("POST", "/api/v1/children", token=CIVIL,
                body={"village_code": V2, "name": "童%d" % i, "gender": "female",
                      "birth_date": "2016-01-0%d" % (i + 1), "risk_level": "high"})
    check(s == 201, "create %d: %s %s" % (i, s, b))
seen, after = [], None
for _ in range(10):
    q = "/api/v1/children?village=%s&fields=gender&limit=2" % V2 + ("&after=" + after if after else "")
    s, b = call("GET", q, token=CIVIL)
    check(s == 200 and len(b["items"]) <= 2, "page: %s %s" % (s, b))
    seen += [i["id"] for i in b["items"]]
    after = b["next"]
    if not after:
        break
check(len(seen) == 6 and len(set(seen)) == 6, "paging saw every child once: %s" % seen)
s, b = call("GET", "/api/v1/children?risk=high&fields=risk_level", token=CIVIL)
check(s == 200 and b["count"] == 5, "risk filter: %s" % b)
# Most of these children have no categories at all.
s, b = call("GET", "/api/v1/children?category=left_behind&fields=gender", token=CIVIL)
check(s == 200 and b["count"] == 2, "category filter: %s" % b)
s, b = call("GET", "/api/v1/children?limit=100000", token=CIVIL)
check(s == 400 and "limit" in b["error"], "page size cap: %s %s" % (s, b))
s, b = call("GET", "/api/v1/children?category=%zz&fields=gender", token=CIVIL)
check(s == 400 and "category" in b["error"], "an unreadable filter is refused, not dropped: %s" % s)
s, b = call("GET", "/api/v1/children?fields=" + ",".join(["gender"] * 65), token=CIVIL)
check(s == 400 and "fields" in b["error"], "too many fields: %s" % s)

# --- events ---
s, b = call("POST", path + "/events", token=EDU,
            body={"type": "home_visit", "date": "2026-11-20", "note": "visited"})
check(s == 201, "event: %s %s" % (s, b))
s, b = call("POST", path + "/events", token=EDU, body={"type": "party", "date": "2026-11-20"})
check(s == 400 and "type" in b["error"], "bad event type: %s %s" % (s, b))
s, b = call("GET", path + "/events", token=EDU, purpose="follow-up")
check(s == 200 and len(b["events"]) == 1 and b["events"][0]["type"] == "home_visit", str(b))
wait_for("the visit date at the village",
         lambda: (record_at(V1, rid) or {}).get("last_visit_date") == "2026-11-20")

# --- cases: reported -> accepted -> handled -> closed ---
s, b = call("POST", path + "/cases", token=EDU, body={"kind": "neglect", "summary": "无人照看"})
check(s == 201 and b["state"] == "reported", "a school reports a case: %s %s" % (s, b))
case = b["case"]
cp = path + "/cases/" + case
s, b = call("PATCH", cp, token=EDU, body={"state": "accepted"})
check(s == 403, "education may not handle cases: %s %s" % (s, b))
s, b = call("PATCH", cp, token=CIVIL, body={"state": "closed"})
check(s == 409, "a case cannot skip to closed: %s %s" % (s, b))
for st in ("accepted", "handled", "closed"):
    s, b = call("PATCH", cp, token=CIVIL, body={"state": st, "note": "ok"})
    check(s == 200 and b["state"] == st, "case to %s: %s %s" % (st, s, b))
s, b = call("PATCH", cp, token=CIVIL, body={"state": "accepted"})
check(s == 409, "a closed case does not go back: %s" % s)
s, b = call("GET", path + "/cases", token=CIVIL, purpose="case review")
check(s == 200 and b["cases"][0]["state"] == "closed" and not b["cases"][0]["overdue"], str(b))
s, b = call("GET", path + "/cases", token=CIVIL)
check(s == 403, "cases need a purpose: %s" % s)

# --- conflicts, reports, policies, metrics ---
s, b = call("GET", "/api/v1/conflicts", token=CIVIL, purpose="data quality")
check(s == 200 and "conflicts" in b and "duplicates" in b, "conflicts: %s %s" % (s, b))
s, b = call("POST", "/api/v1/conflicts/resolve", token=EDU,
            body={"id": rid, "field": "grade", "value": "6"})
check(s == 200, "resolve by writing the chosen value: %s %s" % (s, b))
s, b = call("POST", "/api/v1/conflicts/resolve", token=EDU,
            body={"id": rid, "field": "name", "value": "x"})
check(s == 403, "resolve is a write like any other: %s" % s)
s, b = call("GET", "/api/v1/reports/2026Q4", token=CIVIL)
cli = json.loads(lx("report", "--data", data(X), "--quarter", "2026Q4", "--format", "json"))
check(s == 200 and b["rows"] == cli["rows"] and b["total"] == cli["total"]
      and b["total"]["values"]["entries"] == 7,
      "the API's report is the command's: %s" % (b.get("total") if s == 200 else b))
s, t = call("GET", "/api/v1/reports/2026Q4?format=csv", token=CIVIL)
check(s == 200 and t.startswith(b"\xef\xbb\xbf"), "report csv with a BOM")
s, b = call("GET", "/api/v1/reports/2026Q4?format=pdf", token=CIVIL)
check(s == 400 and "format" in b["error"], "bad report format")
s, b = call("GET", "/api/v1/policies/effective", token=EDU)
check(s == 200 and isinstance(b, dict), "effective policies: %s" % s)
s, t = call("GET", "/metrics")
check(s == 200 and b"lianxin_records " in t and b"lianxin_http_requests_total" in t
      and b"lianxin_link_up" in t, "metrics: %s" % t[:300])
# Clients that go away before their answer is written (reset, not closed):
# the node serves on (a write to them must not end it with SIGPIPE).
import socket, struct
u = urllib.parse.urlparse(E["URL_X"])
ctx = ssl.create_default_context(cafile=E["CA_X"])
for i in range(40):
    raw = socket.create_connection((u.hostname, u.port), timeout=5)
    tls = ctx.wrap_socket(raw, server_hostname=u.hostname)
    req = "GET /api/v1/reports/2026Q4?format=%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
    for _ in range(4):
        tls.sendall((req % ("xlsx" if i % 2 else "html", CIVIL)).encode())
    tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    tls.close()
time.sleep(0.5)
s, b = call("GET", "/healthz")
check(s == 200, "the node serves on after clients reset their connections")
s, b = call("DELETE", path, token=CIVIL)
check(s == 405, "a method the path does not answer: %s" % s)
s, b = call("GET", "/api/v1/nothing", token=CIVIL)
check(s == 404, "an unknown path: %s" % s)
print("api checks passed")
