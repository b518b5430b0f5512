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

#: method.txt fields in file order: (option destination, "Field" as written, --help text).
#: "Protocol", "Subset" and "Split" follow "Method name"; they come from --protocol, --mode and --split.
METHOD_FIELDS: Tuple[Tuple[str, str, str], ...] = (
    ("method_name", "Method name", "the method's name, as the leaderboard should show it"),
    ("train_data", "Training data", "data used for training, e.g. 'ImageNet-1k train images, no labels'"),
    ("train_scheme", "Training scheme", "how the model was trained, e.g. 'self-supervised pre-training, "
                                        "then clustering'"),
    ("networks", "Networks", "backbone(s), e.g. 'ResNet-50' or 'ViT-S/16'"),
    ("link", "Link", "paper or code URL ('none' if there is none yet)"),
    ("description", "Description", "a one-line summary of the method"),
)
CONTEXT_FIELDS = ("Protocol", "Subset", "Split")


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


def method_text(fields: Dict[str, str]) -> str:
    """method.txt: one ``Field: value`` line per field (``fields`` keyed by the "Field" names)."""
    order = [METHOD_FIELDS[0][1], *CONTEXT_FIELDS, *(label for _dest, label, _help in METHOD_FIELDS[1:])]
    for label in order:
        value = fields.get(label, "")
        if not value.strip() or "\n" in value or "\r" in value:
            raise UserError(f"{label!r} must be one non-empty line (method.txt holds one 'Field: value' "
                            f"line per field): fix the option's value")
    return "".join(f"{label}: {fields[label].strip()}\n" for label in order)


def parse_method_text(text: str) -> Dict[str, str]:
    """The ``Field: value`` lines of a method.txt (lines without a colon are ignored)."""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if sep and label.strip():
            fields.setdefault(label.strip(), value.strip())
    return fields
