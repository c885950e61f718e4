#!/usr/bin/env python3
"""Build an ASN MMDB from @ip-location-db/asn's CSVs (rows: start_ip,end_ip,asn,org).

    build_asn_mmdb.py --out asn.mmdb asn-ipv4.csv asn-ipv6.csv

Records use GeoLite2-ASN's layout, {"autonomous_system_number": uint32,
"autonomous_system_organization": string}, so readers written for GeoLite2-ASN work as is.
The tree is IPv6 with IPv4 under ::/96, where MaxMind readers (Python's and Rust's
`maxminddb`) look IPv4 addresses up. Like the country database, ::ffff:0:0/96 is not aliased:
look up IPv4-mapped IPv6 addresses as IPv4 (Rust: `IpAddr::to_canonical`).
Needs the venv (mmdb-writer, netaddr, maxminddb). After writing, it looks up the first
address of every 997th row and fails unless each answers that row's ASN.
"""

import argparse
import csv
import os
import sys
import time

DATABASE_TYPE = "webstats-ASN"
CHECK_EVERY = 997


def read_rows(paths):
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if row:
                    yield row[0], row[1], int(row[2]), row[3]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="MMDB file to write (replaced atomically)")
    ap.add_argument("csv", nargs="+", help="CSV files: start_ip,end_ip,asn,org")
    args = ap.parse_args()

    # Imported after parsing, so that --help works outside the venv.
    import maxminddb
    from mmdb_writer import MMDBWriter, MmdbU32
    from netaddr import IPRange, IPSet

    started = time.monotonic()
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=DATABASE_TYPE,
        languages=["en"],
        description="IP to ASN from @ip-location-db/asn (RouteViews, RIRs, DB-IP; CC BY 4.0)",
        int_type="u32",
    )
    # One record object per (asn, org): the encoder stores each distinct record once anyway,
    # and sharing the dicts keeps memory down.
    records, samples, rows = {}, [], 0
    for start, end, asn, org in read_rows(args.csv):
        key = (asn, org)
        record = records.get(key)
        if record is None:
            record = records[key] = {
                "autonomous_system_number": MmdbU32(asn),
                "autonomous_system_organization": org,
            }
        writer.insert_network(IPSet(IPRange(start, end)), record)
        if rows % CHECK_EVERY == 0:
            samples.append((start, asn))
        rows += 1

    tmp = args.out + ".tmp"
    writer.to_db_file(tmp)

    with maxminddb.open_database(tmp) as reader:
        bad = [(ip, asn, reader.get(ip)) for ip, asn in samples
               if (reader.get(ip) or {}).get("autonomous_system_number") != asn]
    if bad:
        os.unlink(tmp)
        sys.exit(f"{len(bad)} of {len(samples)} sample lookups are wrong, e.g. {bad[:3]}")
    os.replace(tmp, args.out)
    print(f"{args.out}: {rows} ranges, {len(records)} distinct records, "
          f"{len(samples)} sample lookups ok, {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
