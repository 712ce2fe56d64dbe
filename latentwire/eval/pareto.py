"""The Pareto front of answer quality against wire bytes and receiver time.

A metrics row becomes one point per wire coding it was costed in (a text method: utf8, zstd, ids, unigram;
lm_coded: lm; a latent: its packet). A point's bytes are that coding's mean bytes; its time is the row's
receiver_ms (to the first answer token) plus the coding's decode_ms. The front is defined once, here, in
three dimensions: a point is on it when no other point of the same receiver and regime has bytes <=, time <=
and F1 > its own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from latentwire.eval.schema import upgrade_row
from latentwire.wire.codings import CODING_NAMES


@dataclass
class Point:
    """One (method, setting, coding) of one receiver in one regime."""

    receiver: str
    regime: str
    method: str
    setting: str          # "M=32", "sentences=1", "rate=0.5", "4bit" or ""
    coding: str
    bytes: float
    time_ms: float | None
    f1: float
    on_front: bool = False

    @property
    def label(self) -> str:
        return " ".join(x for x in (self.method, self.setting, f"[{self.coding}]") if x)


def setting_label(row: dict) -> str:
    """The row's setting as text: M=.., sentences=.., rate=.., k=.. or ..bit ("" when it has none)."""
    for key, text in (("M", "M={}"), ("sentences", "sentences={}"), ("rate", "rate={}"), ("k", "k={}"),
                      ("bits", "{}bit")):
        if row.get(key) is not None:
            return text.format(row[key])
    return ""


def row_points(row: dict) -> list[Point]:
    """The points of one metrics row: one per coding it has bytes in (lm_coded rows: lm only; latents: the
    packet, wire_bytes, and for a token packet in the context-only regime packet_q, its question coded by the
    packet's coder as the text peers code theirs; decoding the question, well under a millisecond, is not in
    its time)."""
    row = upgrade_row(row)
    common = dict(receiver=row["receiver"], regime=row.get("regime") or "question_aware", method=row["method"],
                  setting=setting_label(row), f1=row["f1"])
    receiver_ms = row.get("receiver_ms")
    if row.get("bytes_utf8") is None and row.get("bytes_lm") is None:      # a packet
        if row.get("wire_bytes") is None:
            return []
        points = [Point(**common, coding="packet", bytes=row["wire_bytes"], time_ms=receiver_ms)]
        if row.get("wire_bytes_coded_question") is not None:   # a token packet with its question coded alike
            points.append(Point(**common, coding="packet_q", bytes=row["wire_bytes_coded_question"],
                                time_ms=receiver_ms))
        return points
    codings = ["lm"] if row["method"] == "lm_coded" else [c for c in CODING_NAMES if c != "lm"]
    points = []
    for coding in codings:
        if row.get(f"bytes_{coding}") is None:
            continue
        decode = row.get(f"decode_ms_{coding}") or 0.0
        points.append(Point(**common, coding=coding, bytes=row[f"bytes_{coding}"],
                            time_ms=None if receiver_ms is None else receiver_ms + decode))
    return points


def mark_front(points: list[Point]) -> list[Point]:
    """Set on_front on every point no other point of its receiver and regime dominates (bytes <=, time <=,
    F1 >); a point without a time is compared on bytes alone. Returns `points`."""
    for point in points:
        point.on_front = not any(
            other is not point and other.receiver == point.receiver and other.regime == point.regime
            and other.bytes <= point.bytes and other.f1 > point.f1
            and (point.time_ms is None or (other.time_ms is not None and other.time_ms <= point.time_ms))
            for other in points)
    return points


def pareto_points(rows: list[dict]) -> list[dict]:
    """Every row's points with the front marked, as dicts (receiver, regime, method, setting, coding, bytes,
    time_ms, f1, on_front, label)."""
    points = mark_front([p for row in rows for p in row_points(row)])
    return [{**asdict(p), "label": p.label} for p in points]


def relative_to_text(rows: list[dict]) -> list[dict]:
    """`rows` with f1_rel_text: F1 over the same receiver's text F1 (the same regime's text row, else any)."""
    text = {(r["receiver"], r.get("regime")): r["f1"] for r in rows if r["method"] == "text"}
    anywhere = {r["receiver"]: r["f1"] for r in rows if r["method"] == "text"}
    for row in rows:
        reference = text.get((row["receiver"], row.get("regime")), anywhere.get(row["receiver"]))
        row["f1_rel_text"] = row["f1"] / reference if reference else None
    return rows
