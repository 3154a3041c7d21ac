"""Every table carries the config as columns: a campaign-like set of results sweeping batch
size and precision gets a typed column per swept key, in CSV and Parquet, in both tables."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from llenergymeasure.config.identity import config_hash
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.results.aggregation import RunRecord
from llenergymeasure.results.config_columns import config_columns, flat_config
from llenergymeasure.results.export import write_tables
from orchestration.campaign.helpers import make_result

BATCHES = [1, 8, 64]
PRECISIONS = ["float32", "bfloat16"]


def _records() -> list[RunRecord]:
    records = []
    for batch in BATCHES:
        for precision in PRECISIONS:
            config = ExperimentConfig(
                model="builtin:tiny-gpt2",
                fp_precision=precision,
                decoder={"temperature": 0.5 if batch == 64 else 0.0},
                pytorch={"batch_size": batch},
            )
            digest, name = config_hash(config), f"b{batch}_{precision}"
            for cycle in (1, 2):
                result = make_result(
                    f"{name}_c{cycle}", name, digest, config=config.model_dump(mode="json")
                )
                records.append(
                    RunRecord(
                        exp_id=f"{name}_c{cycle}",
                        name=name,
                        config_hash=digest,
                        backend="pytorch",
                        cycle=cycle,
                        status="completed",
                        result=result,
                    )
                )
    records.append(  # a failed run: no config to show, its cells stay empty
        RunRecord("lost_c1", "lost", "0" * 64, "pytorch", 1, "failed", error="boom")
    )
    return records


SWEPT = ["pytorch.batch_size", "decoder.temperature", "warmup.max_prompts"]


def test_summary_and_experiment_tables_have_a_typed_column_per_swept_key(tmp_path: Path) -> None:
    write_tables(tmp_path, _records(), formats=("csv", "parquet"))
    for table, rows in (("summary", 7), ("experiments", 13)):  # the failed config included
        parquet = pq.read_table(tmp_path / f"{table}.parquet")
        names = parquet.column_names
        for column in ("backend", "model", "precision", "config_hash", *SWEPT):
            assert column in names, (table, column)
        assert names.index("pytorch.batch_size") == names.index("precision") + 1
        assert "decoder.preset" not in names  # the same for every config: not swept
        assert parquet.schema.field("pytorch.batch_size").type == pa.int64()
        assert parquet.schema.field("warmup.max_prompts").type == pa.int64()  # 32 / 32 / 192
        assert parquet.schema.field("decoder.temperature").type == pa.float64()
        batches = [b for b in parquet.column("pytorch.batch_size").to_pylist() if b is not None]
        assert sorted(set(batches)) == BATCHES and len(batches) == rows - 1  # not the failed
        with (tmp_path / f"{table}.csv").open() as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == names
            csv_rows = list(reader)
        assert {r["pytorch.batch_size"] for r in csv_rows} >= {"1", "8", "64"}
        assert len(csv_rows) == rows
    experiments = pq.read_table(tmp_path / "experiments.parquet").to_pylist()
    lost = next(r for r in experiments if r["exp_id"] == "lost_c1")
    assert lost["pytorch.batch_size"] is None and lost["decoder.temperature"] is None


def test_columns_are_derived_from_the_configs() -> None:
    pytorch = flat_config(ExperimentConfig(model="gpt2").model_dump(mode="json"))
    vllm = flat_config(ExperimentConfig(model="gpt2", backend="vllm").model_dump(mode="json"))
    assert config_columns([pytorch]) == ["pytorch.batch_size"]  # nothing swept in one config
    both = config_columns([pytorch, vllm])
    assert both[:2] == ["pytorch.batch_size", "vllm.max_num_seqs"]
    assert "backend" not in both and "name" not in both
    engine = flat_config(
        ExperimentConfig(
            model="gpt2", backend="vllm", vllm={"engine_kwargs": {"a": [1, 2]}}
        ).model_dump(mode="json")
    )
    assert engine["vllm.engine_kwargs"] == '{"a":[1,2]}'  # a mapping is its JSON text
