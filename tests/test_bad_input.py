"""Bad input ends in one readable `error:` line naming the fix, a non-zero exit, and nothing overwritten."""

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arnn.cli.precheck import command_line_error
from arnn.data import MNISTDataModule
from arnn.errors import DataNotFoundError
from tests.helpers.runs import EXPERIMENTS, FAST, ROOT, run_cli

CASES = {
    "unknown_model": (["model=nope"], "unknown model 'nope'; choose one of: ablation, arnn, arnn_gated"),
    "unknown_model_in_sweep": (["-m", "model=arnn,nope"], "unknown model 'nope'"),
    "unknown_data": (["data=cifar100"], "unknown data 'cifar100'; choose one of: adding, copy, digits"),
    "unknown_callback_in_list": (["callbacks=[default,nope]"], "unknown callbacks 'nope'"),
    "unknown_key": (
        ["model.hiden_size=3"],
        "model.hiden_size is not in the config; did you mean model.hidden_size? "
        "(to add a new key: +model.hiden_size=3)",
    ),
    "unknown_trainer_key": (["trainer.max_epoch=1"], "did you mean trainer.max_epochs?"),
    "unknown_top_level_key": (["foo=1"], "foo is not in the config; to add a new key, write +foo=1"),
    "unknown_key_in_sweep": (["-m", "model.hiden_size=1,2"], "model.hiden_size is not in the config"),
    "malformed_override": (
        ["model.eps=="],
        "cannot parse override 'model.eps==' (extraneous input '='); write key=value",
    ),
    "text_for_an_int": (["model.hidden_size=abc"], "model.hidden_size must be int, got 'abc'"),
    "fraction_for_max_epochs": (["trainer.max_epochs=1.5"], "trainer.max_epochs must be int or null, got 1.5"),
    "zero_max_epochs": (["trainer.max_epochs=0"], "trainer.max_epochs must be >= 1, got 0"),
    "negative_max_epochs": (["trainer.max_epochs=-1"], "trainer.max_epochs must be >= 1, got -1"),
    "negative_gradient_clip": (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val must be >= 0"),
    "negative_lr": (["optimizer.lr=-1"], "optimizer.lr must be > 0 (e.g. optimizer.lr=0.01), got -1"),
    "nan_lr": (["optimizer.lr=nan"], "optimizer.lr must be a finite number, got nan"),
    "negative_seed": (["seed=-1"], "seed must be between 0 and 2**32 - 1"),
    "zero_eps": (["model.eps=0"], "model.eps must be > 0"),
    "negative_eps": (["model.eps=-0.5"], "model.eps must be > 0"),
    "negative_gamma": (["model.gamma=-0.1"], "model.gamma (diffusion) must be >= 0"),
    "infinite_gamma": (["model.gamma=inf"], "model.gamma must be a finite number, got inf"),
    "zero_hidden_size": (["model=lstm", "model.hidden_size=0"], "model.hidden_size must be > 0"),
    "missing_mnist_offline": (
        ["data=smnist", "data.data_dir={tmp}/empty", "data.download=false"],
        "MNIST files not found in {tmp}/empty/MNIST/raw (data.download=false); set data.download=true",
    ),
    "missing_cifar_offline": (
        ["data=scifar10", "data.data_dir={tmp}/empty", "data.download=false"],
        "CIFAR-10 python batches not found in {tmp}/empty/cifar-10-batches-py (data.download=false); "
        "set data.download=true",
    ),
    "corrupted_cifar_offline": (
        ["data=scifar10", "data.data_dir={files}/corrupted", "data.download=false"],
        "CIFAR-10 file {files}/corrupted/cifar-10-batches-py/data_batch_1 is corrupted (MD5 mismatch)",
    ),
    "empty_text": (["data=text", "data.path={files}/empty.txt"], "{files}/empty.txt is empty; next-token prediction"),
    "binary_text": (["data=text", "data.path={files}/binary.txt"], "{files}/binary.txt is not UTF-8 text (byte 4:"),
    "one_character_text": (["data=text", "data.path={files}/one.txt"], "holds only the character 'a'; next-token"),
    "overflowing_noise": (["data=sysid", "data.snr_db=-1000"], "data.snr_db=-1000 makes the noise 10^50 times"),
    "missing_checkpoint": (["ckpt_path={files}/nope.ckpt"], "cannot read checkpoint {files}/nope.ckpt: No such file"),
    "tensor_checkpoint": (["ckpt_path={files}/zeros.ckpt"], "it holds an object of type Tensor, not a checkpoint"),
    "int_checkpoint": (["ckpt_path={files}/five.ckpt"], "it holds an object of type int, not a checkpoint"),
    "truncated_checkpoint": (["ckpt_path={files}/truncated.ckpt"], "the file is truncated or corrupt"),
    "nan_checkpoint": (["ckpt_path={files}/nan.ckpt", "trainer.max_epochs=4"], "holds non-finite weights (net."),
    "checkpoint_past_max_epochs": (
        ["ckpt_path={files}/good.ckpt"],
        "has already trained 2 epochs and trainer.max_epochs=2: nothing is left to train; set trainer.max_epochs",
    ),
    "wrong_model_checkpoint": (["ckpt_path={files}/good.ckpt", "model=lstm"], "does not fit this model"),
    "run_dir_in_proc": (["hydra.run.dir=/proc/arnn"], "cannot create the output directory /proc/arnn: /proc is not"),
    "run_dir_in_sys": (["hydra.run.dir=/sys/arnn"], "cannot create the output directory /sys/arnn: /sys is not"),
    "multirun_with_cfg": (["-m", "--cfg", "hydra", "model.eps=0.1,0.2"], "-m cannot be combined with --cfg hydra"),
    "ddp_without_gpu": pytest.param(
        ["trainer=ddp", "trainer.devices=4"],
        "trainer.accelerator=gpu but this machine has no GPU that torch can use",
        marks=pytest.mark.skipif(
            torch.cuda.is_available(), reason="this machine has the GPU that trainer=ddp asks for"
        ),
    ),
}
"""Mistakes that end before training: one `error:` line, exit 1, no run directory."""

DIVERGING = {
    "eps_10": (
        ["model=lipschitz_rnn", "model.hidden_size=16", "model.init_std=6", "model.eps=10"],
        "likely cause: model.eps=10 is large",
    ),
    "huge_targets": (
        ["data=sysid", "data.snr_db=-590", "trainer.detect_anomaly=false"],
        "likely cause: the batch's targets reach |value| = ",
    ),
    "huge_targets_anomaly_detection": (
        ["data=sysid", "data.snr_db=-590", "trainer.detect_anomaly=true"],
        "likely cause: the batch's targets reach |value| = ",
    ),
}
"""Runs that diverge: one `error:` line naming what was not finite, exit 1, the line also in the run's log."""


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files a user might pass by mistake: checkpoints that are not arnn's, are cut short, hold NaN weights or have
    trained all epochs; texts that are empty, binary or one character; CIFAR-10's file names with other contents."""
    folder = tmp_path_factory.mktemp("bad_files")
    trained = run_cli(*FAST, f"hydra.run.dir={folder / 'run'}")
    assert trained.returncode == 0, trained.stderr
    good = folder / "good.ckpt"
    shutil.copy(folder / "run" / "checkpoints" / "last.ckpt", good)
    (folder / "truncated.ckpt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    checkpoint = torch.load(good, weights_only=True)
    first = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][first] = torch.full_like(checkpoint["state_dict"][first], math.nan)
    torch.save(checkpoint, folder / "nan.ckpt")
    torch.save(torch.zeros(3), folder / "zeros.ckpt")
    torch.save(5, folder / "five.ckpt")
    (folder / "empty.txt").write_text("")
    (folder / "binary.txt").write_bytes(b"PK\x03\x04\xff\xfe binary")
    (folder / "one.txt").write_text("aaaa")
    corrupted = folder / "corrupted" / "cifar-10-batches-py"
    corrupted.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (corrupted / name).write_bytes(b"not a pickle")
    return folder


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.e2e
@pytest.mark.parametrize(("arguments", "message"), CASES.values(), ids=CASES.keys())
def test_bad_input_prints_one_error_line_and_writes_no_run_directory(tmp_path, bad_files, arguments, message):
    run_dir = tmp_path / "run"
    arguments = [argument.format(tmp=tmp_path, files=bad_files) for argument in arguments]
    dirs = [] if any(argument.startswith("hydra.run.dir") for argument in arguments) else [f"hydra.run.dir={run_dir}"]

    flags = arguments[: next(i for i, argument in enumerate(arguments) if "=" in argument)]  # -m, --cfg hydra
    result = run_cli(*flags, *FAST, *arguments[len(flags) :], *dirs, f"hydra.sweep.dir={run_dir}")

    last_line = _error_line(result)
    assert last_line.startswith("error: ") and message.format(tmp=tmp_path, files=bad_files) in last_line, last_line
    assert not run_dir.exists()


@pytest.mark.e2e
def test_a_config_error_in_an_earlier_run_directory_overwrites_nothing(tmp_path):
    previous = tmp_path / "run" / "checkpoints" / "last.ckpt"
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"an earlier run's checkpoint")

    result = run_cli(*FAST, f"ckpt_path={previous}", f"hydra.run.dir={tmp_path / 'run'}")

    error = _error_line(result)
    assert error.startswith(f"error: cannot read checkpoint {previous}")
    assert (tmp_path / "run" / "train.log").read_text().splitlines()[-1].endswith(error)
    assert previous.read_bytes() == b"an earlier run's checkpoint"
    assert sorted(path.name for path in (tmp_path / "run" / "checkpoints").iterdir()) == ["last.ckpt"]


@pytest.mark.e2e
@pytest.mark.parametrize(("arguments", "cause"), DIVERGING.values(), ids=DIVERGING.keys())
def test_a_diverging_run_names_what_was_not_finite_on_stderr_and_in_its_log(tmp_path, arguments, cause):
    result = run_cli(*FAST, *arguments, f"hydra.run.dir={tmp_path}")

    last_line = _error_line(result)
    assert last_line.startswith("error: training diverged: ") and cause in last_line, last_line
    assert "optimizer.lr" not in last_line  # nothing was updated yet: the learning rate cannot be the cause
    assert last_line in (tmp_path / "train.log").read_text()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["arnn.bench", "--repeats", "0"], "argument --repeats: expected a positive integer, got '0'"),
        (["arnn.bench", "--parallel-steps", "0"], "expected comma-separated positive integers, got '0'"),
        (["arnn.analysis", "gradient_flow", "--checkpoint", "{files}/zeros.ckpt"], "it holds an object of type Tensor"),
        (["arnn.analysis", "jacobian", "--checkpoint", "{files}/truncated.ckpt"], "the file is truncated or corrupt"),
    ],
)
def test_the_other_commands_answer_bad_input_in_one_line(tmp_path, bad_files, arguments, message):
    arguments = [argument.format(files=bad_files) for argument in arguments]
    result = subprocess.run(
        [sys.executable, "-m", *arguments, "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT
    )

    assert message in _error_line(result)
    assert not (tmp_path / "out").exists()


EXPERIMENT = min(EXPERIMENTS)


def _check(*arguments: str) -> str | None:
    return command_line_error(list(arguments), ROOT / "conf", "train")


@pytest.mark.parametrize(
    "arguments",
    [
        ["callbacks=[default,jacobian_spectrum]", "model=arnn"],
        ["-m", "model=arnn,lstm", "model.eps=0.1,0.2", "callbacks=[default],[default,jacobian_spectrum]"],
        ["-m", "hydra/launcher=submitit_local", "model.hidden_size=range(8,17,8)"],
        # a key that only the swept experiments' data has, set in every job with ++
        ["-m", "experiment=paper/pmnist/quick/kru,paper/smnist/quick/lstm", "++data.data_dir=/data", "seed=1,2"],
        [f"experiment={EXPERIMENT}", "trainer.precision=16-mixed", "~callbacks.lr_monitor"],
        # Lightning's common flags are in trainer/default.yaml: no + needed
        ["trainer.fast_dev_run=true", "trainer.limit_train_batches=0.1", "trainer.accumulate_grad_batches=2"],
        ["trainer.val_check_interval=0.5", "trainer.enable_progress_bar=false", "callbacks.rich_progress_bar=null"],
        ["--cfg", "job", "model=lstm"],
        ["hydra.run.dir=outputs/a new folder/run"],
    ],
)
def test_a_valid_command_line_passes_the_pre_check(arguments):
    assert _check(*arguments) is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["hydra/launcher=nope"], "unknown hydra/launcher 'nope'; choose one of: basic,"),
        (["-m", "hydra/launcher=basic,nope"], "unknown hydra/launcher 'nope'"),
        (["-m", "callbacks=[default],[nope]"], "unknown callbacks 'nope'"),
        (
            ["experiment=nope"],
            f"unknown experiment 'nope'; python train.py --list-experiments lists all {len(EXPERIMENTS)}",
        ),
        (
            ["experiment=paper/pmnist/arnnn"],
            "unknown experiment 'paper/pmnist/arnnn'; did you mean paper/pmnist/arnn or",
        ),
        # a name from before the experiment tree, alone or in a sweep
        (
            ["experiment=paper_pmnist_arnn_quick"],
            "experiment=paper_pmnist_arnn_quick is now experiment=paper/pmnist/quick/arnn",
        ),
        (
            ["-m", "experiment=paper/pmnist/arnn,sysid_units"],
            "experiment=sysid_units is now experiment=paper/sysid/units",
        ),
        (["~foo"], "Could not delete from config. 'foo' does not exist."),
        (["model.eps=0.1,0.2"], "Ambiguous value for argument 'model.eps=0.1,0.2'; 1. To use it as a list"),
        (
            ["-m", "experiment=paper/pmnist/quick/kru,paper/smnist/quick/lstm", "data.data_dir=/data"],
            "data.data_dir is not in the config that a sweep over experiment starts from; write ++data.data_dir=/data "
            "to set it in every job",
        ),
        (["-m", "trainer.max_epoch=1,2"], "trainer.max_epoch is not in the config; did you mean trainer.max_epochs?"),
        (
            ["-m", "foo.bar=interval(0,1)"],
            "foo.bar is not in the config; to add a new key, write +foo.bar=interval(0,1)",
        ),
    ],
)
def test_a_command_line_mistake_is_one_line_naming_the_fix(arguments, message):
    error = _check(*arguments)
    assert error is not None and error.startswith(message) and "\n" not in error


def test_the_pre_check_leaves_the_output_directory_to_hydra(tmp_path):
    assert _check(f"hydra.run.dir={tmp_path}/new/run") is None
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("source", ["full", "test_split"])
def test_corrupted_mnist_files_are_named_with_the_fix(tiny_mnist, source):
    for path in (tiny_mnist / "MNIST" / "raw").iterdir():
        path.write_bytes(path.read_bytes()[:100])  # truncated, as by an interrupted copy
    datamodule = MNISTDataModule(data_dir=str(tiny_mnist), source=source, download=False, val_size=50)
    datamodule.prepare_data()
    with pytest.raises(DataNotFoundError, match=r"MNIST/raw are not valid IDX files.*data\.download=true"):
        datamodule.setup()
