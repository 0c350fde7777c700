"""Text from a trained next-token model: `python -m arnn.generate ckpt_path=<file> [prompt="ROMEO:"] [length=200]
[temperature=0.8] [seed=0] [data.path=<its training text>]`.

The prompt runs through the recurrence once; then each step samples a character from softmax(logits / temperature)
and feeds it back with the carried state (temperature → 0 approaches the most likely character, 1 samples the model's
own distribution). The vocabulary is the training text's, rebuilt from the run's data config (`data.path` points at
the text where it moved). Mistakes end in one line `error: ...` and exit 1.
"""

import sys

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from arnn.cli.key_values import REQUIRED, parse_key_values
from arnn.errors import UserError, exit_on_user_error
from arnn.lit.next_token import NextTokenModel
from arnn.runs.checkpoint import CONFIG_KEY, module_from_checkpoint, read_checkpoint
from arnn.runs.evaluate import data_config

USAGE = "python -m arnn.generate ckpt_path=<file> [prompt=<text>] [length=200] [temperature=0.8] [seed=0]"
KNOWN = {"ckpt_path": REQUIRED, "prompt": "\n", "length": 200, "temperature": 0.8, "seed": 0}


def generate(arguments: list[str]) -> str:
    """The prompt and `length` characters sampled after it."""
    values, overrides = parse_key_values(arguments, KNOWN, USAGE)
    length, temperature = values["length"], values["temperature"]
    if not isinstance(length, int) or length < 1:
        raise UserError(f"length must be a whole number of characters ≥ 1, got {length!r}")
    if not isinstance(temperature, int | float) or temperature <= 0:
        raise UserError(f"temperature must be > 0 (0.8 is a usual choice), got {temperature!r}")
    path = str(values["ckpt_path"])
    checkpoint = read_checkpoint(path)
    module = module_from_checkpoint(checkpoint)
    if not isinstance(module, NextTokenModel):
        raise UserError(f"{path} holds a {type(module).__name__}; generate needs a next-token model (data=text)")
    datamodule = instantiate(data_config(OmegaConf.create(checkpoint[CONFIG_KEY]), overrides))
    if datamodule.vocab_size != module.vocab_size:
        raise UserError(
            f"the text at data.path has {datamodule.vocab_size} characters, the model was trained on "
            f"{module.vocab_size}; set data.path to its training text"
        )
    prompt = str(values["prompt"])
    if unknown := sorted(set(prompt) - set(datamodule.vocabulary)):
        raise UserError(f"the prompt holds characters the model never saw: {''.join(unknown)!r}; leave them out")
    torch.manual_seed(values["seed"])
    tokens = datamodule.encode(prompt)[None]
    sampled = []
    with torch.no_grad():
        outputs, state = module.net(F.one_hot(tokens, module.vocab_size).float())
        for _ in range(length):
            probabilities = torch.softmax(module.readout(outputs[:, -1]) / temperature, dim=-1)
            token = torch.multinomial(probabilities, 1)
            sampled.append(int(token))
            outputs, state = module.net(F.one_hot(token, module.vocab_size).float(), state)
    return prompt + datamodule.decode(torch.tensor(sampled))


def main() -> None:
    print(exit_on_user_error(generate, sys.argv[1:]))


if __name__ == "__main__":
    main()
