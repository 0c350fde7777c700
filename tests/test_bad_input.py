"""Bad input ends in one readable `error:` line naming the fix, a non-zero exit, and nothing overwritten."""

import pytest

from arnn.data import MNISTDataModule
from arnn.errors import DataNotFoundError
from arnn.precheck import command_line_error
from tests.conftest import FAST, ROOT, run_cli

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
    "zero_eps": (["model.eps=0"], "model.eps must be > 0"),
    "negative_eps": (["model.eps=-0.5"], "model.eps must be > 0"),
    "negative_gamma": (["model.gamma=-0.1"], "model.gamma (diffusion) must be >= 0"),
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
        ["data=scifar10", "data.data_dir={tmp}/corrupted", "data.download=false"],
        "CIFAR-10 file {tmp}/corrupted/cifar-10-batches-py/data_batch_1 is corrupted (MD5 mismatch)",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(("arguments", "message"), CASES.values(), ids=CASES.keys())
def test_bad_input_prints_one_error_line_and_overwrites_nothing(tmp_path, arguments, message):
    run_dir = tmp_path / "run"
    previous = run_dir / "checkpoints" / "last.ckpt"
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"an earlier run's checkpoint")
    corrupted = tmp_path / "corrupted" / "cifar-10-batches-py"  # files with CIFAR-10's names, not its contents
    corrupted.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (corrupted / name).write_bytes(b"not a pickle")
    arguments = [argument.format(tmp=tmp_path) for argument in arguments]

    result = run_cli(*arguments, *FAST, f"hydra.run.dir={run_dir}", f"hydra.sweep.dir={run_dir}")

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and message.format(tmp=tmp_path) in last_line, result.stderr
    assert "Traceback" not in result.stderr
    assert previous.read_bytes() == b"an earlier run's checkpoint"
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "key"), [([], "hydra.run.dir"), (["-m"], "hydra.sweep.dir")])
def test_an_output_dir_under_a_file_is_refused_before_hydra_starts(tmp_path, mode, key):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")

    result = run_cli(*mode, *FAST, f"{key}={blocker}/run")

    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"error: cannot create the output directory {blocker}/run: {blocker} is a file; set {key} (or paths.log_dir) "
        f"to a writable folder"
    )
    assert blocker.read_text() == "not a folder"


EXPERIMENT = min(path.stem for path in (ROOT / "conf" / "experiment").glob("*.yaml"))


def _check(*arguments: str) -> str | None:
    return command_line_error(list(arguments), ROOT / "conf", "train")


@pytest.mark.parametrize(
    "arguments",
    [
        ["callbacks=[default,jacobian_spectrum]", "model=arnn"],
        ["-m", "model=arnn,lstm", "model.eps=0.1,0.2", "callbacks=[default],[default,jacobian_spectrum]"],
        ["-m", "hydra/launcher=submitit_local", "model.hidden_size=range(8,17,8)"],
        [f"experiment={EXPERIMENT}", "+trainer.precision=16-mixed", "~callbacks.lr_monitor"],
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
        (["experiment=nope"], "unknown experiment 'nope'; choose one of: ode_compare, paper_"),
        (["~foo"], "Could not delete from config. 'foo' does not exist."),
        (["model.eps=0.1,0.2"], "Ambiguous value for argument 'model.eps=0.1,0.2'; 1. To use it as a list"),
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
