#!/usr/bin/env python3
"""Fails when a source file reaches a library its layer must not use (docs/architecture.md, "Layers").

CMake link lines keep the targets apart, but header-only libraries (ZeroMQ's cppzmq, msgpack-cxx,
nlohmann-json) and every rma header are always on the include path, so a forbidden #include would
still compile. This script follows each file's #include "..." lines through the repository
(transitively) and checks every header reached against its layer's rules.

  scripts/check_layers.py [--root DIR]   check the tree (exit 1 and a list of violations if any)
  scripts/check_layers.py --self-test    prove the check catches a violation (used by ctest)
"""
import argparse
import os
import re
import sys
import tempfile

# Headers that belong to the I/O edges.
ZMQ = r"<zmq(_addon)?\.hpp>|<zmq\.h>"
MSGPACK = r"<msgpack\.hpp>|<msgpack/"
PQXX = r"<pqxx/"
PISTACHE = r"<pistache/"
CURL = r"<curl/"
CODEC = r'"protocol/(codec|frames|msgpack_io|message_fields)\.h"'

# (files the rule covers, forbidden includes, why). Paths are relative to the root, as regexes.
RULES = [
    (r"^common/", r'"(?!common/)[a-z_]+/', "common/ depends on nothing else in rma"),
    (r"^protocol/(ids|messages|names|bytes|limits)\.(h|cc)$",
     "|".join([ZMQ, MSGPACK, PQXX, PISTACHE, CODEC, r"<nlohmann/"]),
     "the protocol's types carry no encoding and no I/O"),
    (r"^broker/(scheduler|scheduler_[a-z_]+|stats|stats_recorder|store_types|config|timed_heap|"
     r"credits|fair_queue|reputation)\.(h|cc)$",
     "|".join([ZMQ, MSGPACK, PQXX, PISTACHE, CODEC, r"<nlohmann/",
               r'"broker/(broker_loop|pg_[a-z_]+|admin|store)\.h"']),
     "the scheduler is the rules only: no sockets, no encoding, no database, no admin documents"),
    (r"^broker/pg_", "|".join([ZMQ, MSGPACK, CODEC, PISTACHE, r'"broker/(broker_loop|admin)\.h"']),
     "the PostgreSQL store adapter speaks typed records, never the wire"),
    (r"^broker/(broker_loop|admin|config_file)\.(h|cc)$", "|".join([PQXX, r'"broker/pg_']),
     "the loop talks to the store through TaskStore only"),
    (r"^gateway/", "|".join([PQXX, r'"(broker|worker|cli)/']),
     "the gateway talks to the broker over the client protocol only"),
    (r"^worker/session\.(h|cc)$", "|".join([ZMQ, MSGPACK, CODEC, r"<curl/"]),
     "the worker's session is a state machine: the Agent does the I/O"),
    (r"^worker/", "|".join([PQXX, PISTACHE, r'"(broker|gateway|cli)/']),
     "the worker talks to the broker over the worker protocol only"),
    (r"^cli/", "|".join([ZMQ, MSGPACK, PQXX, PISTACHE, r'"(broker|worker|gateway|protocol)/']),
     "rmactl speaks HTTP like any other client"),
]

INCLUDE = re.compile(r'^\s*#\s*include\s+([<"][^>"]+[>"])', re.M)
SOURCES = (".h", ".cc")
SKIP_DIRS = {"build", "node_modules", ".git", "tests", "bench", "dashboard"}


def includes_of(root, path, cache):
    if path in cache:
        return cache[path]
    cache[path] = []
    try:
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return cache[path]
    found = []
    for inc in INCLUDE.findall(text):
        found.append((path, inc))
        if inc.startswith('"'):
            target = inc.strip('"')
            if os.path.exists(os.path.join(root, target)):
                found.extend(includes_of(root, target, cache))
    cache[path] = found
    return found


def sources(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        for name in filenames:
            if name.endswith(SOURCES) and not name.endswith("_test.cc") and "_test_" not in name:
                yield os.path.normpath(os.path.join(rel, name))


def check(root):
    cache = {}
    violations = []
    for path in sorted(sources(root)):
        rules = [(forbidden, why) for pattern, forbidden, why in RULES if re.search(pattern, path)]
        if not rules:
            continue
        for via, inc in includes_of(root, path, cache):
            for forbidden, why in rules:
                if re.search(forbidden, inc):
                    chain = "" if via == path else f" (through {via})"
                    violations.append(f"{path}: includes {inc}{chain}: {why}")
    return violations


def self_test():
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "broker"))
        os.makedirs(os.path.join(root, "protocol"))
        with open(os.path.join(root, "protocol", "messages.h"), "w") as f:
            f.write("#pragma once\n#include <string>\n")
        with open(os.path.join(root, "protocol", "codec.h"), "w") as f:
            f.write('#pragma once\n#include <msgpack.hpp>\n#include "protocol/messages.h"\n')
        with open(os.path.join(root, "broker", "scheduler.h"), "w") as f:
            f.write('#pragma once\n#include "protocol/messages.h"\n')
        clean = check(root)
        if clean:
            print("self-test: a clean tree was reported:", clean)
            return 1
        # A scheduler file that reaches msgpack through the codec must be caught.
        with open(os.path.join(root, "broker", "scheduler_dispatch.cc"), "w") as f:
            f.write('#include "broker/scheduler.h"\n#include "protocol/codec.h"\n')
        found = check(root)
        if not any("<msgpack.hpp>" in v and "through protocol/codec.h" in v for v in found):
            print("self-test: a scheduler file including the codec was not caught:", found)
            return 1
    print("self-test: ok")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    violations = check(os.path.abspath(args.root))
    for v in violations:
        print(v)
    if violations:
        print(f"{len(violations)} layering violation(s); see docs/architecture.md", file=sys.stderr)
        return 1
    print("layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
