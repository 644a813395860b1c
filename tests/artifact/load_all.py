"""Load artifacts in a fresh process and write their outputs: python load_all.py OUT IN DIR…"""

import sys

import torch
from safetensors.torch import load_file, save_file

import slimkit as sk


def main() -> None:
    out, inputs, *dirs = sys.argv[1:]
    xs = load_file(inputs)
    res = {}
    with torch.no_grad():
        for d in dirs:
            name = d.rstrip("/").rsplit("/", 1)[-1].removesuffix(".zip")
            model = sk.load(d)
            res[name] = model(xs[name.split("-")[0]]).contiguous()
    save_file(res, out)


if __name__ == "__main__":
    main()
