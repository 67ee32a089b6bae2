"""`csim eval --mteb-json DIR`: the scores in MTEB's result format, so they can be read by MTEB's tools or sent to
the MTEB leaderboard's results repository next to other models' results.

Layout and fields follow MTEB's TaskResult files (mteb >= 1.11): DIR/<model>/no_revision_available/<Task>.json with
`task_name`, `dataset_revision`, `mteb_version`, `evaluation_time` and `scores` = {split: [{"main_score",
"cosine_spearman", "hf_subset": "default", "languages": ["eng-Latn"]}]}, scores as fractions (0-1), plus
model_meta.json. MTEB's STS protocol is csim's `--protocol mteb` (the cosine Spearman over all of a task's pairs of
the released text, SICK-R as all its 9,927 pairs: `sickr_all`), uncapped; other settings are refused rather than
written under MTEB's task names.
csim reads its own copy of the data (the data layout), not MTEB's hub datasets, so `dataset_revision` names that
(`csim-data/<text>`) rather than a hub revision.
"""

from __future__ import annotations

import re
from pathlib import Path

from csim.errors import CsimError
from csim.runs.files import write_json_atomic

MTEB_FORMAT_VERSION = "1.12.0"  # the TaskResult layout written here (scores as lists per split)
# csim task -> (MTEB task name, split)
MTEB_TASKS = {"sts12": ("STS12", "test"), "sts13": ("STS13", "test"), "sts14": ("STS14", "test"),
              "sts15": ("STS15", "test"), "sts16": ("STS16", "test"), "stsb_test": ("STSBenchmark", "test"),
              "stsb_dev": ("STSBenchmark", "validation"), "sickr_all": ("SICK-R", "test")}  # mteb/sickr-sts: all pairs


def check_protocol(protocol: str, aggregate: str, text: str, max_pairs) -> None:
    """Refuse, before any work, an evaluation whose scores would not be MTEB's (the args after the protocol's
    defaults are filled in)."""
    if protocol != "mteb" or aggregate != "all" or text != "official" or max_pairs:
        raise CsimError(f"--mteb-json: MTEB scores each STS task as one cosine Spearman over all its pairs of the "
                        f"released text (SICK-R: all 9,927 pairs); this evaluation is --protocol {protocol} "
                        f"--aggregate {aggregate} --text {text}{f' --max-pairs {max_pairs}' if max_pairs else ''}. "
                        f"Rerun with --protocol mteb (its defaults: --aggregate all --text official) and no "
                        f"--max-pairs to write MTEB results.")


def write_mteb_results(result: dict, out_dir: Path, model_name: str) -> list[Path]:
    """Write one MTEB TaskResult file per MTEB task covered by `result` (a `csim eval` result); -> the files."""
    check_protocol(result.get("protocol", "mteb"), result["aggregate"], result["text"], result.get("max_pairs"))
    folder = Path(out_dir) / re.sub(r"[^A-Za-z0-9._-]+", "__", model_name).strip("_") / "no_revision_available"
    by_task: dict[str, dict] = {}
    for task in result["tasks"]:
        if task not in MTEB_TASKS or f"{task}_spearman" not in result["metrics"]:
            continue
        name, split = MTEB_TASKS[task]
        score = result["metrics"][f"{task}_spearman"] / 100.0
        entry = by_task.setdefault(name, {"dataset_revision": f"csim-data/{result['text']}", "task_name": name,
                                          "mteb_version": MTEB_FORMAT_VERSION, "scores": {},
                                          "evaluation_time": 0.0, "kg_co2_emissions": None})
        entry["scores"][split] = [{"cosine_spearman": score, "main_score": score, "hf_subset": "default",
                                   "languages": ["eng-Latn"]}]
        entry["evaluation_time"] += float(result["seconds"].get(task, 0.0))
    if not by_task:
        raise CsimError(f"--mteb-json: none of the tasks evaluated ({', '.join(result['tasks'])}) is an MTEB task; "
                        f"MTEB has {', '.join(sorted(MTEB_TASKS))}.")
    written = []
    for name, entry in by_task.items():
        write_json_atomic(folder / f"{name}.json", entry)
        written.append(folder / f"{name}.json")
    info = result.get("model_info", {})
    write_json_atomic(folder / "model_meta.json", {"name": model_name, "revision": "no_revision_available",
                                                   "framework": ["Sentence Transformers", "csim"],
                                                   "max_tokens": info.get("max_length"),
                                                   "loader": None, "languages": ["eng-Latn"]})
    return written
