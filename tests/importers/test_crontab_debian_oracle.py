"""The crontab parser accepts exactly what Debian cron accepts: checked against the real thing.

* User crontab lines go through Debian's ``crontab -u nobody FILE`` (it installs the file or
  prints Debian's error and refuses); the oracle user's crontab is removed after every call.
  Needs Debian's ``cron`` package and root (``-u``); skipped with the reason otherwise.
* System-format lines (/etc/cron.d) go through the ``cron`` daemon itself, started for a few
  seconds in a private mount namespace (``unshare -m``) where /etc/cron.d, the spool,
  /etc/crontab, /run and /dev/log are private: the daemon logs ``Error: ...; while reading
  /etc/cron.d/<file>`` for every file it ignores. Needs root and ``unshare``.

Known, reported disagreements are ``xfail(strict=True)``: when one is fixed the test says so.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crontab_import.crontab import parse_crontab

# one worker runs the module: its tests share the oracles' verdicts (module fixtures)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debian-oracle")]

CRONTAB = shutil.which("crontab")
CRON = shutil.which("cron") or ("/usr/sbin/cron" if Path("/usr/sbin/cron").exists() else None)
ORACLE_USER = "nobody"

JUNK = (
    "the parser refuses a control character (\\v, \\r) inside a time field, where Debian's "
    "scanner skips it like any text after a complete element: a deliberate refusal"
)
OVERFLOW = (
    "Debian reads numbers with atoi() into an int: 4294967301 wraps to 5 (accepted), step "
    "2147483648 wraps negative (rejected); cronfields.py uses the exact value"
)
NO_PASSWD = "the pure parser does not read /etc/passwd: a user-like name that does not exist"


def _debian_skip_reason() -> str | None:
    if CRONTAB is None:
        return "Debian's crontab is not installed (apt-get install cron)"
    if os.geteuid() != 0:
        return "crontab -u needs root"
    listed = subprocess.run([CRONTAB, "-u", ORACLE_USER, "-l"], capture_output=True, text=True)
    if listed.returncode == 0:
        return f"{ORACLE_USER} already has a crontab; the oracle will not overwrite it"
    return None


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    reason = _debian_skip_reason()
    if reason:
        pytest.skip(reason)
    assert CRONTAB is not None
    work = tmp_path_factory.mktemp("crontab-oracle")

    def accepts(content: bytes) -> tuple[bool, str]:
        path = work / "candidate"
        path.write_bytes(content)
        try:
            r = subprocess.run(
                [CRONTAB, "-u", ORACLE_USER, str(path)], capture_output=True, timeout=30
            )
        finally:
            subprocess.run([CRONTAB, "-u", ORACLE_USER, "-r"], capture_output=True, timeout=30)
        return r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace").strip()

    yield accepts


def parser_accepts(content: bytes, *, file: str = "/var/spool/cron/crontabs/nobody") -> bool:
    result = parse_crontab(content, file=file, timezone="UTC")
    return not result.errors


def _xf(line: str, reason: str) -> object:
    return pytest.param(line, marks=pytest.mark.xfail(reason=reason, strict=True), id=repr(line))


USER_LINES = [
    # time fields
    "0 5 * * * echo hi",
    "61 5 * * * echo hi",
    "0 24 * * * x",
    "0 0 0 * * x",
    "0 0 32 * * x",
    "0 0 * 0 * x",
    "0 0 * 13 * x",
    "0 0 * * 8 x",
    "0 0 * * 7 x",
    "0 0 * * 0-7 x",
    "*/60 * * * * x",
    "0-59/60 * * * * x",
    "*/0 * * * * x",
    "1-5/0 * * * * x",
    "5-1 * * * * x",
    "70-5 * * * * x",
    "50-70 * * * * x",
    "0-70/60 * * * * x",
    "1-5/ * * * * x",
    "1, * * * * x",
    ",1 * * * * x",
    "1,,2 * * * * x",
    "-5 * * * * x",
    "5- * * * * x",
    "5/15 * * * * x",
    "5/ * * * * x",
    "5-5/15 * * * * x",
    "*,5 * * * * x",
    "? * * * * x",
    "5L * * * * x",
    "5x * * * * x",
    "1-5x * * * * x",
    "1-5/2x * * * * x",
    "L * * * * x",
    "0 0 ? * * x",
    "0 0 L * * x",
    "0 0 15W * * x",
    "0 0 * * 5L x",
    "05 * * * * x",
    "0000000005 * * * * x",
    "99999999999 * * * * x",
    "*/1000 * * * * x",
    "1-5/99 * * * * x",
    "0 0 31 2 * x",
    "0 0 * * fri-mon x",
    "0 0 * jan-3 * x",
    "0 0 * Jan * x",
    "0 0 * JAN * x",
    "0 0 * janu * x",
    "0 0 * * sun-7 x",
    "0 0 * * 7-sun x",
    "0 0 * * 8-9 x",
    "0 0 * * 6-8 x",
    "0 0 * * 5-sun x",
    "0 0 * 12-1 * x",
    "0 0 * 11-14 * x",
    "0 0 * * mon-fri/2 x",
    "0 0 * jan-dec/3 * x",
    "0 0 * * MON x",
    "0 0 1-31/2 * * x",
    "0 0 * * sun,7 x",
    "0 5 * * sun,mon-wed/2,fri x",
    "0 5 1 * 1 x",
    "0 5 * * sat-sun x",
    "0 5 * * sun-sat x",
    "0,30 5 * * * x",
    "0" * 998 + "5 * * * * x",
    "0" * 999 + "5 * * * * x",
    # structure
    "0 5 * * *",
    "0 5 * * *   ",
    "0 5 * * ",
    "0 5 * *",
    "* * * * 0",
    "* * * * * *",
    "* * * * * *x",
    "* * * * * */5 x",
    "@daily * x",
    "* * * * * \t*",
    "* * * * * x*",
    "* * * * * , x",
    "* * * * * @x",
    "* * * * * #x",
    "* * * * * %",
    "* * * * * \tx",
    "*\t*\t*\t*\t*\tx",
    " \t0 5 * * * x",
    "0 5 * * * x # y",
    "0 5 * * * %" + "x" * 997,
    "0 5 * * * " + "x" * 998,
    "0 5 * * * " + "x" * 999,
    "@daily " + "x" * 998,
    "@daily " + "x" * 999,
    "0 5 * * * " + "é" * 499,
    "0 5 * * * " + "é" * 500,
    "0 5 * * * " + "x" * 990 + " " * 9,
    # macros
    "@daily",
    "@daily x",
    "@dailyx",
    "@ daily x",
    "@hourly\tx",
    " @daily x",
    "@midnight x",
    "@annually x",
    "@yearly x",
    "@weekly x",
    "@monthly x",
    "@reboot",
    "@reboot x",
    "@REBOOT x",
    "@foo x",
    "@DAILY x",
    "@daily =",
    "@daily A=",
    "@daily =x",
    "0=5 * * * * x",
    # environment
    "A=b",
    "A = b",
    " A=b",
    "A B=c",
    'A="b" ',
    "A='b",
    'A="b',
    "1A=b",
    "A-B=c",
    "=b",
    "A==b",
    "A=b=c",
    '"A B"=c',
    "A=\t b \t",
    "A='  x y  '",
    'A=""',
    "A=''",
    'A="a"b',
    'A= "a" b',
    'A="a" "b"',
    'A=a "b"',
    'A="a\\"b"',
    "5 = * * * * x",
    "A\t=\tb",
    "A =b",
    "A= b",
    "A",
    "-=x",
    "A.B=c",
    "A=#x",
    "#A=b",
    "A=b%c",
    "A='a'",
    "A='\"'",
    'A=  "  x  "  ',
    'A="a"\t',
    "D=",
    "G = ",
    "V28='a'\"b\"",
    'V31="x\\\\"',
    "V33='a''",
    "A='\t'",
    'A="' + "x" * 994 + '"',
    'A="' + "x" * 995 + '"',
    "A=" + "x" * 5000,
    "A" * 994 + "=  b",
    "A" * 995 + "=  b",
    " " + 'A="' + "x" * 994 + '"',
    # comments and blanks
    "",
    "   ",
    "\t",
    "# x",
    "#",
    "   #x",
    "# " + "x" * 5000,
    # carriage returns (CRLF files)
    "0 5 * * * echo hi\r",
    "A=b\r",
    "# x\r",
    "\r",
    " \r",
    "@daily x\r",
    "@daily\r",
    "@reboot\r",
    "A=\r",
    'A="x"\r',
    "0 5 * * * x\r# y",
    # Debian skips text after a complete element (get_list), and reads numbers with atoi
    "*5 * * * * x",
    "*-5 * * * * x",
    "*/2/3 * * * * x",
    "1-2-3 * * * * x",
    "*/5/ * * * * x",
    "5#2 * * * * x",
    "1-5/2-3 * * * * x",
    "0 0 * * mon#2 x",
    "** * * * * x",
    _xf("0\x0b5 * * * * x", JUNK),
    _xf("0 5 * * 1-5\r", JUNK),
    _xf("0 5 * * *\r", JUNK),
    "*/4294967297 * * * * x",
    "*/99999999999 * * * * x",
    "4294967301 * * * * x",
    "*/2147483648 * * * * x",
]


@pytest.mark.parametrize("line", USER_LINES)
def test_parser_accepts_exactly_the_user_lines_debian_crontab_accepts(
    debian: object, line: str
) -> None:
    content = (line + "\n").encode()
    accepted, message = debian(content)  # type: ignore[operator]
    assert parser_accepts(content) == accepted, f"Debian: {'accepts' if accepted else message}"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"# x",
        b"  ",
        b"A=b",
        b"0 5 * * * x",
        b"0 5 * * * x\n# x",
        b"0 5 * * * x\nA=b",
        b"\xef\xbb\xbf0 5 * * * x\n",
        b"\xef\xbb\xbf# x\n",
        b"0 5 * * * echo a\x00b\n",
        b"# a\x00b\n",
        b"\x00\n",
        b"\x0c0 5 * * * x\n",
        b"# c\n" * 10000,
        b"# c\n" * 10001,
        b"0 5 * * * true\n" * 10001,
    ],
    ids=lambda c: repr(c[:30]) + f"+{len(c)}",
)
def test_parser_accepts_exactly_the_files_debian_crontab_accepts(
    debian: object, content: bytes
) -> None:
    accepted, message = debian(content)  # type: ignore[operator]
    assert parser_accepts(content) == accepted, f"Debian: {'accepts' if accepted else message}"


# --- a seeded random sample of lines built from whole field elements --------------------------

ELEMENTS = [
    "*",
    "*/5",
    "*/0",
    "*/60",
    "0",
    "5",
    "7",
    "12",
    "23",
    "24",
    "31",
    "32",
    "59",
    "60",
    "1-5",
    "5-1",
    "0-7",
    "1-5/2",
    "0-59/15",
    "1-12/0",
    "70-5",
    "5-70",
    "5/15",
    "jan",
    "dec",
    "JAN",
    "jan-mar",
    "mar-jan",
    "mon",
    "sun",
    "fri-mon",
    "mon-fri/2",
    "sat-sun",
    "janu",
    "L",
    "?",
    "",
    "x",
    "-",
    "/5",
    "1-",
    "-1",
    "0-7/8",
]
MACROS = [
    "@daily",
    "@hourly",
    "@reboot",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "@midnight",
    "@Daily",
    "@every",
]
ENV_PARTS = (
    ["A", "PATH", "A B", '"A B"', "1A", "", "_x"],
    ["=", " = ", "==", "\t=", "= "],
    ["b", '"b"', "'b'", "'b", '"a"b', "", "  ", '"x" ', "a b ", "'  x  '", '"#"'],
)


def _field(rng: random.Random) -> str:
    return ",".join(rng.choice(ELEMENTS) for _ in range(rng.choice((1, 1, 1, 2, 3))))


def _random_line(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        fields = [_field(rng) for _ in range(rng.choice((5, 5, 5, 5, 4, 6)))]
        return " ".join(fields) + rng.choice((" echo hi", "", " %x", " echo a%b"))
    if kind < 0.75:
        return rng.choice(MACROS) + rng.choice((" echo hi", "", "\techo hi", "x echo"))
    names, seps, values = ENV_PARTS
    return rng.choice(names) + rng.choice(seps) + rng.choice(values)


def test_a_seeded_random_sample_of_lines_agrees_with_debian(debian: object) -> None:
    rng = random.Random(20260801)
    lines = sorted({_random_line(rng) for _ in range(400)})
    disagreements = []
    for line in lines:
        content = (line + "\n").encode()
        accepted, message = debian(content)  # type: ignore[operator]
        if parser_accepts(content) != accepted:
            disagreements.append((line, "Debian accepts" if accepted else message))
    assert disagreements == []


# --- system format: the cron daemon in a private mount namespace -----------------------------

NAMESPACE_SCRIPT = r"""
set -e
W="$1"; SECS="$2"
mkdir -p "$W/olddev"
mount --bind /dev "$W/olddev"
mount -t tmpfs tmpfs /dev
for d in null zero urandom random full tty; do
  touch /dev/$d; mount --bind "$W/olddev/$d" /dev/$d
done
ln -s /proc/self/fd /dev/fd; mkdir /dev/pts /dev/shm
touch /dev/log; mount --bind "$W/log.sock" /dev/log
mount -t tmpfs tmpfs /etc/cron.d
cp -a "$W/crond/." /etc/cron.d/
chown root:root /etc/cron.d/*; chmod 644 /etc/cron.d/*
mount -t tmpfs tmpfs /var/spool/cron/crontabs
printf '# empty\n' > "$W/etc-crontab"; mount --bind "$W/etc-crontab" /etc/crontab
mount -t tmpfs tmpfs /run
"$CRON" -f -L 0 &
PID=$!
sleep "$SECS"
kill $PID
wait $PID || true
"""


def _namespace_skip_reason() -> str | None:
    if CRON is None:
        return "Debian's cron daemon is not installed (apt-get install cron)"
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "the daemon oracle needs root and unshare"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True
    )
    if probe.returncode != 0:
        return "unshare -m is not permitted here"
    for d in ("/etc/cron.d", "/var/spool/cron/crontabs"):
        if not Path(d).is_dir():
            return f"{d} is missing"
    return None


def run_cron_daemon(files: dict[str, bytes], work: Path, seconds: float = 2.0) -> list[str]:
    """Start Debian's cron on ``files`` as /etc/cron.d; return what it logged."""
    (work / "crond").mkdir()
    for name, content in files.items():
        (work / "crond" / name).write_bytes(content)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(work / "log.sock"))
    sock.settimeout(0.2)
    logged: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                logged.append(sock.recv(65536).decode(errors="replace"))
            except TimeoutError:
                continue

    reader = threading.Thread(target=read)
    reader.start()
    try:
        r = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "bash",
                "-c",
                NAMESPACE_SCRIPT,
                "oracle",
                str(work),
                str(seconds),
            ],
            capture_output=True,
            timeout=60,
            env={**os.environ, "CRON": str(CRON)},
        )
        time.sleep(0.3)  # the syslog reader thread takes the daemon's last datagrams
    finally:
        done.set()
        reader.join()
        sock.close()
    assert r.returncode == 0, r.stderr.decode()
    return logged


SYSTEM_LINES = [
    "0 5 * * * root true",
    "0 5 * * * nobody true",
    "0 5 * * * root",
    "0 5 * * *",
    "0 5 * * * root ",
    "@daily root true",
    "@daily",
    "@daily root",
    "@reboot root",
    "@reboot root true",
    "0 5 * * * root\ttrue",
    "0 5 * * *   root   true",
    "0 5 * * * root true\r",
    "0 5 * * * root\r",
    "0 5 * * * /usr/bin/true",
    "0 3 * * * /opt/backup.sh >> /var/log/backup.log 2>&1",
    "0 0 * * 0 * root true",
    "0 5 * * * root:root true",
    "0 5 * * * root *x",
    "0 5 * * * root * x",
    "@daily root *",
    "61 5 * * * root true",
    "0 5 * * * root " + "x" * 998,
    "0 5 * * * root " + "x" * 999,
    "A=b",
    "D=",
    "0 0 31 2 * root true",
    "0 5 * * * daemon true",
]
SYSTEM_XFAIL = [("0 5 * * * ROOT true", NO_PASSWD), ("0 5 * * * nosuchuser true", NO_PASSWD)]
EXTRA_FILES = {"noeol": b"0 5 * * * root true", "noeolcomment": b"0 5 * * * root true\n# x"}


@pytest.fixture(scope="module")
def daemon_verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bool]:
    """File name or line -> whether the daemon read the file without an error."""
    reason = _namespace_skip_reason()
    if reason:
        pytest.skip(reason)
    lines = SYSTEM_LINES + [line for line, _ in SYSTEM_XFAIL]
    files = {f"line{n:03d}": (line + "\n").encode() for n, line in enumerate(lines)}
    files.update(EXTRA_FILES)
    logged = run_cron_daemon(files, tmp_path_factory.mktemp("cron-daemon"))
    assert any("INFO" in m for m in logged), "the daemon logged nothing: is /dev/log wired?"
    accepted = {name: not any(f"(*system*{name})" in m for m in logged) for name in files}
    return accepted | {line: accepted[f"line{n:03d}"] for n, line in enumerate(lines)}


@pytest.mark.parametrize(
    "line", [*SYSTEM_LINES, *(_xf(line, reason) for line, reason in SYSTEM_XFAIL)]
)
def test_parser_accepts_exactly_the_cron_d_lines_the_debian_daemon_accepts(
    daemon_verdicts: dict[str, bool], line: str
) -> None:
    content = (line + "\n").encode()
    assert parser_accepts(content, file="/etc/cron.d/oracle") == daemon_verdicts[line]


def test_the_daemon_ignores_a_cron_d_file_whose_last_job_line_lacks_its_newline(
    daemon_verdicts: dict[str, bool],
) -> None:
    assert daemon_verdicts["noeol"] is False
    assert parser_accepts(EXTRA_FILES["noeol"], file="/etc/cron.d/x") is False
    assert daemon_verdicts["noeolcomment"] is True
    assert parser_accepts(EXTRA_FILES["noeolcomment"], file="/etc/cron.d/x") is True
