"""The benchmark's four protocols and the layout of a ``submission.zip``, as data, plus the rules they imply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from imagenets.errors import UserError

#: Files of a submission besides the prediction PNGs (``<wnid>/<name>.png``).
METHOD_FILE = "method.txt"
MATCH_FILE = "match.json"

#: Written by ``apply-match`` in its output folder: these predictions hold class ids already.
APPLIED_MARKER = ".imagenets-apply-match.json"

#: What a protocol says about a match file.
MATCH_REQUIRED = "required"      # predictions are cluster ids: a match (match.json, or apply-match) is needed
MATCH_UNEXPECTED = "unexpected"  # predictions are class ids: a match.json draws a warning


@dataclass(frozen=True)
class Protocol:
    """One row of the benchmark's protocol table."""

    name: str         # value of --protocol and of method.txt's "Protocol" field
    title: str
    labels: str       # which labels training may use
    match: str        # MATCH_REQUIRED or MATCH_UNEXPECTED
    predictions: str  # what the submitted ids are


PROTOCOLS: Dict[str, Protocol] = {p.name: p for p in (
    Protocol("fully-unsupervised", "Fully unsupervised",
             labels="no labels at all",
             match=MATCH_REQUIRED,
             predictions="cluster ids 1..K, matched to classes by a match computed on the validation split "
                         "(match.py) and applied to the test images"),
    Protocol("distance-matching", "Distance matching",
             labels="only the pre-trained model; the train-semi masks give class embeddings (no fine-tuning)",
             match=MATCH_UNEXPECTED,
             predictions="class ids 0..K: each pixel takes the class whose embedding is nearest"),
    Protocol("semi-supervised", "Semi-supervised",
             labels="the train-semi masks (1% of the training images) for fine-tuning",
             match=MATCH_UNEXPECTED,
             predictions="class ids 0..K"),
    Protocol("free", "Free",
             labels="any data and labels",
             match=MATCH_UNEXPECTED,
             predictions="class ids 0..K"),
)}

#: method.txt lines in file order, as the official tools write them: (option destination, label, --help).
#: Nothing else goes in: the protocol is chosen by the competition the zip is uploaded to.
METHOD_FIELDS: Tuple[Tuple[str, str, str], ...] = (
    ("method_name", "Method name", "the method's name, as the leaderboard should show it"),
    ("train_data", "Training data", "data used for training, e.g. 'ImageNet-1k train images, no labels'"),
    ("train_scheme", "Training scheme", "how the model was trained, e.g. 'self-supervised pre-training, "
                                        "then clustering'"),
    ("networks", "Networks", "backbone(s), e.g. 'ResNet-50' or 'ViT-S/16'"),
    ("link", "Paper/Project link", "paper or code URL ('none' if there is none yet)"),
    ("description", "Method description", "a one-line summary of the method"),
)
METHOD_LABELS: Tuple[str, ...] = tuple(label for _dest, label, _help in METHOD_FIELDS)
#: What the official tools write for a value they do not know, and the spellings of "unknown" we map to it.
UNKNOWN = "null"
_UNKNOWN_SPELLINGS = {"", "none", "null", "unknown", "n/a", "-"}
#: method.txt holds six short lines: anything bigger than this is not one.
METHOD_MAX_BYTES = 64 * 1024
#: A match.json maps at most every id a mask can hold (65536 keys, ~1 MB): anything much bigger is not one.
MATCH_MAX_BYTES = 8 * 1024 ** 2


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UserError(f"unknown protocol {name!r}: use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def protocols_help() -> str:
    """One sentence per protocol, escaped for argparse's %-formatting of --help."""
    text = "; ".join(f"{p.name} = {p.labels}, predictions are {p.predictions}" for p in PROTOCOLS.values())
    return text.replace("%", "%%")


def match_rule(protocol: Protocol, has_match: bool, matched: Optional[bool]) -> List[str]:
    """Warnings the protocol's match rule draws; a UserError when it is broken.

    ``matched``: the predictions hold class ids already (apply-match or --matched); None = unknown
    (a received zip: the server cannot tell cluster ids from class ids, so it trusts the submitter).
    """
    if has_match and matched:
        raise UserError(f"the predictions are already matched (written by apply-match, or --matched) and a "
                        f"{MATCH_FILE} was given too: it would be applied twice; drop --match (or --matched)")
    if protocol.match == MATCH_REQUIRED:
        if not has_match and matched is False:
            raise UserError(f"protocol {protocol.name}: predictions are cluster ids and need a match: pass "
                            f"--match results/NAME.json (from match.py on the validation split), or run "
                            f"`imagenets apply-match` first and submit its output, or pass --matched if the "
                            f"predictions already hold class ids")
        return []
    if has_match:
        return [f"protocol {protocol.name} submits {protocol.predictions}, so a {MATCH_FILE} is unexpected; "
                f"the benchmark applies it anyway: drop --match unless your predictions are cluster ids"]
    return []


def method_value(label: str, value: str) -> str:
    """One method.txt value: stripped, ``null`` when unknown; a UserError when it spans lines."""
    if "\n" in value or "\r" in value:
        raise UserError(f"{label!r} must be one line (method.txt holds one 'Label: value' line per field): "
                        "fix the option's value")
    value = value.strip()
    return UNKNOWN if value.lower() in _UNKNOWN_SPELLINGS else value


def method_text(values: Dict[str, str]) -> str:
    """method.txt exactly as the official tools write it: the six lines in order, no final newline."""
    return "\n".join(f"{label}: {method_value(label, values.get(label, ''))}" for label in METHOD_LABELS)


@dataclass
class MethodFile:
    """A parsed method.txt: the values found, problems (the server would refuse it) and warnings."""

    fields: Dict[str, str]
    problems: List[str]
    warnings: List[str]


def parse_method_text(text: str) -> MethodFile:
    """Read a method.txt as the official tools write it (a final newline is tolerated)."""
    fields: Dict[str, str] = {}
    problems: List[str] = []
    extra: List[str] = []
    order: List[str] = []
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        label = label.strip()
        if sep and label in METHOD_LABELS:
            if label in fields:
                problems.append(f"two '{label}:' lines")
                continue
            fields[label] = value.strip()
            order.append(label)
        elif line.strip():
            extra.append(line.strip())
    problems += [f"no '{label}: ...' line" for label in METHOD_LABELS if label not in fields]
    warnings = []
    if extra:
        warnings.append(f"{len(extra)} lines that are none of the six official ones, which the server may not "
                        f"accept: {', '.join(repr(line[:60]) for line in extra[:3])}"
                        + (", ..." if len(extra) > 3 else ""))
    if not problems and order != list(METHOD_LABELS):
        warnings.append("the lines are not in the official order (" + ", ".join(METHOD_LABELS) + ")")
    empty = [label for label in METHOD_LABELS if label in fields and not fields[label]]
    if empty:
        warnings.append(f"empty values ({', '.join(empty)}): the official tools write {UNKNOWN}")
    return MethodFile(fields, problems, warnings)
