"""``e2rank index``: embed a large corpus into Chroma or Parquet, resumably; options are IndexSettings'."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from ..indexing import IndexSettings, run_index
from ..loading import TINY_RANDOM
from ._common import default_model, defaults, epilog, load_model, port


def _names(value: str) -> tuple[str, ...]:
    """A comma-separated option as a tuple, blanks dropped."""
    return tuple(name.strip() for name in value.split(",") if name.strip())


def add_parser(sub: Any) -> None:
    """The ``index`` subcommand's options; each one's dest and default are its IndexSettings field's."""
    d = defaults(IndexSettings)
    index_p = sub.add_parser(
        "index",
        help="embed a large corpus (JSON lines or Parquet) into Chroma or Parquet, resumably",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Embed every record of a corpus with embed_documents and write it to a Chroma collection or to Parquet "
            "part files. Streams the input; a rerun skips the ids already written, so a killed job resumes where it "
            "stopped. Embeds in this process (--model), through running `e2rank serve` servers (--server-url), or "
            "on Ray (--ray)."
        ),
        epilog=epilog(
            "model,parquet",
            """
            e2rank index --model Alibaba-NLP/E2Rank-0.6B --input corpus.jsonl --output vectors.parquet
            e2rank index --input corpus.parquet --chroma-dir ./db --collection docs \\
                --server-url http://gpu1:8000,http://gpu2:8000
            e2rank index --input corpus.parquet --output vectors.parquet --ray --ray-address auto --actors 8 \\
                --gpus-per-actor 1
            """,
            """
            extras by use: model (embedding here), chroma (--collection), parquet (Parquet input or --output),
              client (--server-url), ray (--ray; includes pyarrow).
            input: JSON lines (.jsonl, .jsonl.gz, .ndjson) or Parquet, a file or a directory of them, one record each:
              {"id": "doc-1", "text": "Paris is the capital of France.", "title": "Paris", "lang": "en"}
            output: Chroma records (id, document, metadata, vector), or Parquet part files with the columns
              id, text, metadata (a JSON string), vector (a fixed-size list of float32).
            """,
        ),
    )
    source = index_p.add_argument_group("input")
    source.add_argument(
        "--input",
        required=True,
        help="a .jsonl, .jsonl.gz, .ndjson or .parquet file, or a directory of them (required)",
    )
    add = source.add_argument
    add("--id-field", default=d["id_field"], help="field holding each record's unique id (default: %(default)s)")
    add("--text-field", default=d["text_field"], help="field holding the text to embed (default: %(default)s)")
    add(
        "--title-field",
        default=d["title_field"],
        help="optional field embedded before the text as 'title text' (default: none)",
    )
    add(
        "--metadata-fields",
        type=_names,
        default=d["metadata_fields"],
        help="comma-separated fields stored as metadata (default: none)",
    )
    add = index_p.add_argument_group("output (one of --output or --collection)").add_argument
    add("--output", default=d["output"], help="Parquet output: a directory of part files (default: none)")
    add("--collection", default=d["collection"], help="Chroma collection to create or extend (default: none)")
    add("--chroma-dir", default=d["chroma_dir"], help="embedded Chroma database directory (default: none)")
    add(
        "--chroma-host",
        default=d["chroma_host"],
        help="host of a Chroma server, instead of --chroma-dir (default: none)",
    )
    add("--chroma-port", type=port, default=d["chroma_port"], help="port of the Chroma server (default: %(default)s)")
    add = index_p.add_argument_group("embedding").add_argument
    add(
        "--model",
        default=default_model(),
        help=f"hub id, local directory, or '{TINY_RANDOM}' (default: $E2RANK_MODEL or Alibaba-NLP/E2Rank-0.6B)",
    )
    add("--device", default=d["device"], help="cuda, cpu, cuda:1... (default: cuda when available)")
    add("--dtype", default=d["dtype"], help="bfloat16, float16 or float32 (default: bf16 on GPU)")
    add(
        "--batch-size",
        type=int,
        default=d["batch_size"],
        help="texts embedded and written together (default: %(default)s)",
    )
    add(
        "--max-batch-tokens",
        type=int,
        default=d["max_batch_tokens"],
        help="tokens per forward pass, padding included (default: the model's, 16384 on GPU, 1024 on CPU)",
    )
    add("--cache", default=d["cache"], help="SQLite embedding cache file to fill (default: no cache)")
    add(
        "--no-progress",
        dest="show_progress",
        action="store_const",
        const=False,
        default=d["show_progress"],
        help="no progress bar (default: shown on a terminal)",
    )
    add = index_p.add_argument_group("servers (extra: client)").add_argument
    add(
        "--server-url",
        dest="server_urls",
        metavar="SERVER_URL",
        type=_names,
        default=d["server_urls"],
        help="comma-separated `e2rank serve` URLs, used round-robin; API key from $E2RANK_API_KEY (default: none)",
    )
    add(
        "--concurrency",
        type=int,
        default=d["concurrency"],
        help="batches in flight with --server-url (default: 2 per server)",
    )
    add("--timeout", type=float, default=d["timeout"], help="seconds per server request (default: %(default)g)")
    add = index_p.add_argument_group("Ray (extra: ray)").add_argument
    add("--ray", action="store_true", default=d["ray"], help="embed on Ray Data with an actor pool (default: off)")
    add("--ray-address", default=d["ray_address"], help="Ray cluster address, e.g. auto (default: start a local Ray)")
    add(
        "--actors",
        type=int,
        default=d["actors"],
        help="model actors: one per GPU, or N on CPUs (default: %(default)s)",
    )
    add(
        "--gpus-per-actor",
        type=float,
        default=d["gpus_per_actor"],
        help="GPUs each actor reserves (default: %(default)g)",
    )
    add(
        "--cpus-per-actor",
        type=float,
        default=d["cpus_per_actor"],
        help="CPUs each actor reserves (default: %(default)g)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the job (:func:`~e2rank_integrations.indexing.run_index`) and print its summary; Ctrl-C exits 130."""
    settings = IndexSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(IndexSettings)})
    try:
        summary = run_index(settings, load_model)
    except KeyboardInterrupt:
        sys.stderr.write("e2rank index: interrupted; what was written is complete: rerun the same command to go on\n")
        return 130
    print(summary)
    return 0
