"""A variant names a RobustBench model: its file imports as the network robustbench's own loader
builds (logits compared), downloads resume and refuse HTML pages (a local HTTP server), and tiny
stand-ins of two zoo architecture families work with every analysis-facing method. Offline."""

import hashlib
import http.server
import io
import json
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from publishers import import_publishers, perturb, robustbench_reference, stand_in_block, stand_in_file, zoo_file

from robinterp import download, zoo
from robinterp.checkpoints import load_model
from robinterp.cli import main
from robinterp.errors import RobinterpError

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def robustbench():
    import_publishers()


def _block(name, dataset="cifar10", threat="L2", **extra):
    return zoo.ZooCheckpoint.from_dict(
        {"source": "robustbench", "name": name, "dataset": dataset, "threat_model": threat, **extra}, "checkpoint"
    )


# --- zoo files import as robustbench loads them ----------------------------------------------------


@pytest.mark.parametrize(
    "name,dataset,threat,layout,drop_normalisation,size",
    [
        ("Standard", "cifar10", "L2", "state_dict_module", False, 32),  # WideResNet-28-10, no normalisation
        ("Rebuffi2021Fixing_28_10_cutmix_ddpm", "cifar10", "L2", "module", False, 32),  # DMWideResNet, Swish
        ("Rice2020Overfitting", "cifar10", "L2", "state_dict", True, 32),  # PreActResNet18, mu/sigma from the class
        ("Engstrom2019Robustness", "cifar10", "L2", "plain", True, 32),  # ResNet50
        ("Sehwag2021Proxy_R18", "cifar10", "L2", "module_model", False, 32),  # ResNet18
        ("Salman2020Do_R18", "imagenet", "Linf", "module", False, 64),  # torchvision ResNet18 + normaliser
    ],
)
def test_zoo_files_import_as_robustbench_loads_them(tmp_path, name, dataset, threat, layout, drop_normalisation, size):
    entry = zoo.lookup(name, dataset, threat)
    net = perturb(entry.build())
    # ImageNet files hold the bare torchvision network; robustbench adds the normaliser (`model.`)
    src = zoo_file(
        tmp_path, name, net.model if dataset == "imagenet" else net, layout, dataset, threat, drop_normalisation
    )
    from robinterp.published import import_zoo

    record = import_zoo(_block(name, dataset, threat), src, tmp_path / "model.pt", log=lambda s: None)
    ours, meta = load_model(tmp_path / "model.pt")
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours(x), robustbench_reference(tmp_path, name, dataset, threat)(x)
    assert a.shape == b.shape and b.std() > 0.1 and (a - b).abs().max() < TOL
    assert record["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest() == meta["source"]["sha256"]
    assert meta["arch"]["zoo"] == {"name": name, "dataset": dataset, "threat_model": threat, "stand_in": None}
    assert meta["source"]["robustbench_version"] == "1.1.1"
    assert bool(meta["source"]["notes"]) == (drop_normalisation or dataset == "imagenet")  # kept normalisation said


def test_an_imagenet_entry_on_a_class_subset_keeps_exactly_those_logits(tmp_path):
    from robinterp.published import import_zoo

    name, index, subset = "Salman2020Do_R18", [f"n{i:08d}" for i in range(1000)], ["n00000417", "n00000003"]
    net = perturb(zoo.lookup(name, "imagenet", "Linf").build())
    src = zoo_file(tmp_path, name, net.model, "plain", "imagenet", "Linf")
    import_zoo(
        _block(name, "imagenet", "Linf", class_subset="wnids"),
        src,
        tmp_path / "model.pt",
        classes=subset,
        image_shape=(3, 64, 64),
        index_wnids=index,
        log=lambda s: None,
    )
    ours, meta = load_model(tmp_path / "model.pt")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours(x), robustbench_reference(tmp_path, name, "imagenet", "Linf")(x)[:, [417, 3]]
    assert a.shape == (2, 2) and (a - b).abs().max() < TOL and meta["classes"] == subset
    with pytest.raises(RobinterpError, match=r"class\(es\) \['n99999999'\] are not among"):
        import_zoo(
            _block(name, "imagenet", "Linf", class_subset="wnids"),
            src,
            tmp_path / "m.pt",
            classes=["n99999999"],
            image_shape=(3, 64, 64),
            index_wnids=index,
            log=lambda s: None,
        )


def test_unknown_names_and_unsupported_entries_are_one_line_errors():
    cases = {
        ("Rebufi2021Fixing_28_10_cutmix_ddpm", "cifar10", "L2"): "close matches: ['Rebuffi2021Fixing_28_10",
        ("Gowal2020Uncovering_70_16", "cifar10", "L2"): "it is in the cifar10 Linf track",
        ("Debenedetti2022Light_XCiT-S12", "cifar10", "Linf"): "Hugging Face hub through timm",
        ("Chen2020Adversarial", "cifar10", "Linf"): "an ensemble of 3 files",
        ("Standard_R50", "imagenet", "Linf"): "format: torchvision",
        ("Standard", "imagenet", "L2"): "no imagenet L2 track",
    }
    for args, says in cases.items():
        with pytest.raises(RobinterpError, match=says.replace("[", r"\[")) as e:
            zoo.lookup(*args)
        assert "\n" not in str(e.value)


# --- tiny stand-ins: the same import and load code, every analysis-facing method -------------------

STAND_INS = {
    "WideResNet": ["fc", "bn1", "block3", "block2", "block1", "conv1"],
    "DMWideResNet": ["logits", "batchnorm", "layer.2", "layer.1", "layer.0", "init_conv"],
}


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    """A 10-class split of 32 x 32 images: what the stand-ins are imported for."""
    from robinterp.data import write_split

    out = tmp_path_factory.mktemp("split")
    rng = np.random.default_rng(0)
    write_split(
        out,
        rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
        np.arange(20) % 10,
        [str(i) for i in range(10)],
        {"kind": "test"},
    )
    return out


@pytest.mark.parametrize("architecture", list(STAND_INS))
def test_stand_ins_import_through_the_cli_and_serve_every_analysis(tmp_path, classes, architecture):
    from robinterp.randomisation import cascade_stages, randomisation_cascade

    block = stand_in_block(f"tiny_{architecture}", architecture, depth=10, width=1)
    src, sidecar = stand_in_file(tmp_path / "cache", block)
    out = tmp_path / "model.pt"
    settings = ["--settings", json.dumps({"variant.checkpoint": block})]
    assert (
        main(
            [
                "import-checkpoint",
                *settings,
                "--input",
                str(src),
                "--sidecar",
                str(sidecar),
                "--classes",
                str(classes / "manifest.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "model.pt"]
    assert (
        main(
            [
                "import-checkpoint",
                "--settings",
                json.dumps({"variant.checkpoint": {**block, "arch": "resnet50"}}),
                "--input",
                str(src),
                "--out",
                str(tmp_path / "other.pt"),
            ]
        )
        == 2
    )  # a file's keys: refused
    model, meta = load_model(out)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1), requires_grad=True)
    logits, r = model(x), model.features(x)
    assert logits.shape == (3, 10) and r.shape == (3, 64)
    head = model.net.get_submodule(meta["arch"]["head"])
    assert torch.allclose(head(r), logits, atol=1e-5)
    torch.autograd.grad(r[:, 5].sum(), x)  # feature visualisation / inversion differentiate R(x)
    assert [n for n, _ in cascade_stages(model)] == STAND_INS[architecture]
    target = logits.argmax(1).detach()
    saliency = lambda m: torch.autograd.grad(m(x).gather(1, target[:, None]).sum(), x)[0]
    result = randomisation_cascade(model, saliency, seed=0)
    assert result["spearman"].shape == (6, 3) and result["spearman"][-1].mean() < 0.9
    assert meta["source"]["stand_in"]["architecture"] == architecture and meta["source"]["fetched"]["sha256"]
    with pytest.raises(RobinterpError, match=r"fails on \(3, 16, 16\) images .* imported for \(3, 32, 32\)"):
        model(torch.rand(2, 3, 16, 16))


def test_a_file_that_is_not_the_entry_or_changed_since_its_download_is_refused(tmp_path, classes):
    from robinterp.data import load_split
    from robinterp.published import import_zoo

    names = load_split(classes).classes
    wide = stand_in_block("tiny", "WideResNet")
    src, sidecar = stand_in_file(tmp_path, wide)
    with pytest.raises(RobinterpError, match=r"does not fit DMWideResNet: unknown keys \['module.conv1.weight'"):
        import_zoo(_block("tiny", stand_in={"architecture": "DMWideResNet"}), src, tmp_path / "m.pt", classes=names)
    with pytest.raises(RobinterpError, match="describes .* not the variant's checkpoint 'other'"):
        import_zoo(_block("other", stand_in=wide["stand_in"]), src, tmp_path / "m.pt", sidecar=sidecar, classes=names)
    state = torch.load(src, weights_only=True)
    state["state_dict"]["module.fc.bias"] += 1
    torch.save(state, src)
    with pytest.raises(RobinterpError, match="differs from .* recorded when it was fetched"):
        import_zoo(_block("tiny", stand_in=wide["stand_in"]), src, tmp_path / "m.pt", sidecar=sidecar, classes=names)
    assert not (tmp_path / "m.pt").exists()


# --- downloads: a local HTTP server ----------------------------------------------------------------

DRIVE_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p class="uc-warning-subcaption"><a href="/open?id={id}">Standard.pt</a> is too large for Google to scan.</p>
<form id="download-form" action="/file" method="get"><input type="submit" value="Download anyway"/>
<input type="hidden" name="id" value="{id}"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-1"></form></body></html>"""
QUOTA_PAGE = """<html><head><title>Google Drive - Quota exceeded</title></head><body>
<p class="uc-error-caption">Sorry, you can't view or download this file at this time.</p>
<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently.</p></body></html>"""


class _Server(http.server.ThreadingHTTPServer):
    payload: bytes = b""
    drops: int = 0  # responses still to break off half-way
    ranges: bool = True  # whether Range requests are honoured
    requests: list


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv, url = self.server, urllib.parse.urlsplit(self.path)
        srv.requests.append((url.path, dict(urllib.parse.parse_qsl(url.query)), self.headers.get("Range")))
        if url.path in ("/drive", "/quota"):
            page = (DRIVE_PAGE.format(id="abc") if url.path == "/drive" else QUOTA_PAGE).encode()
            return self._send(200, page, {"Content-Type": "text/html; charset=utf-8"})
        start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") and srv.ranges else 0
        body = srv.payload[start:]
        headers = {"Content-Type": "application/octet-stream"}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(srv.payload) - 1}/{len(srv.payload)}"
        if srv.drops:
            srv.drops -= 1
            return self._send(206 if start else 200, body, headers, cut=len(body) // 2)
        self._send(206 if start else 200, body, headers)

    def _send(self, status, body, headers, cut=None):
        self.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body[:cut])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    buf = io.BytesIO()
    torch.save({"w": torch.arange(20000.0)}, buf)
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.payload, srv.requests = buf.getvalue(), []
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    monkeypatch.setattr(download, "CHUNK", 4096)  # the broken-off transfer keeps whole chunks
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_download_resumes_a_broken_off_transfer_with_a_range_request(tmp_path, server):
    srv, base = server
    srv.drops = 1
    out = tmp_path / "f.pt"
    with pytest.raises(RobinterpError, match=f"broke off after .* resumes from {out}.part"):
        download.download_file(f"{base}/file", out, log=lambda s: None)
    have = (tmp_path / "f.pt.part").stat().st_size
    assert 0 < have < len(srv.payload) and not out.exists()
    assert download.download_file(f"{base}/file", out, log=lambda s: None) == len(srv.payload)
    assert srv.requests[-1][2] == f"bytes={have}-" and out.read_bytes() == srv.payload
    assert not (tmp_path / "f.pt.part").exists()


def test_download_starts_again_where_the_server_ignores_range(tmp_path, server):
    srv, base = server
    srv.drops, srv.ranges = 1, False
    out = tmp_path / "f.pt"
    with pytest.raises(RobinterpError, match="broke off"):
        download.download_file(f"{base}/file", out, log=lambda s: None)
    download.download_file(f"{base}/file", out, log=lambda s: None)
    assert out.read_bytes() == srv.payload


def test_fetch_follows_the_drive_confirmation_and_records_the_sha256(tmp_path, server, monkeypatch):
    srv, base = server
    monkeypatch.setattr(zoo, "GDRIVE_URL", base + "/drive?id={id}")
    out, sidecar = tmp_path / "cifar10" / "L2" / "Standard.pt", tmp_path / "cifar10" / "L2" / "Standard.pt.json"
    assert (
        main(
            [
                "download-robustbench",
                "--name",
                "Standard",
                "--dataset",
                "cifar10",
                "--threat-model",
                "L2",
                "--out",
                str(out),
                "--sidecar",
                str(sidecar),
            ]
        )
        == 0
    )
    assert srv.requests[-1][:2] == ("/file", {"id": "abc", "export": "download", "confirm": "t", "uuid": "u-1"})
    record = json.loads(sidecar.read_text())
    assert record["sha256"] == hashlib.sha256(srv.payload).hexdigest() and out.read_bytes() == srv.payload
    assert record["robustbench_version"] == "1.1.1"
    assert record["gdrive_id"] == zoo.lookup("Standard", "cifar10", "L2").gdrive_id
    assert sorted(p.name for p in out.parent.iterdir()) == ["Standard.pt", "Standard.pt.json"]


def test_fetch_refuses_an_html_page_in_one_line_naming_the_url_and_the_fix(tmp_path, server, monkeypatch, capsys):
    srv, base = server
    monkeypatch.setattr(zoo, "GDRIVE_URL", base + "/quota?id={id}")
    out = tmp_path / "Standard.pt"
    fetch = [
        "download-robustbench",
        "--name",
        "Standard",
        "--dataset",
        "cifar10",
        "--threat-model",
        "L2",
        "--out",
        str(out),
        "--sidecar",
        str(tmp_path / "s.json"),
    ]
    assert main(fetch) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Quota exceeded" in err and "Too many users" in err
    assert f"{base}/quota?id=" in err and "--from-file <that file>" in err
    assert list(tmp_path.iterdir()) == []  # nothing of the page was written
    # the manual fix: a copy downloaded by hand is taken as is
    by_hand = tmp_path.parent / "by_hand.pt"
    by_hand.write_bytes(srv.payload)
    assert main([*fetch, "--from-file", str(by_hand)]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["sha256"] == hashlib.sha256(srv.payload).hexdigest()


# --- config --------------------------------------------------------------------------------------


def test_the_study_config_names_every_l2_entry_with_robustbenchs_numbers():
    from robustbench.model_zoo.cifar10 import l2

    from robinterp.config import check_config, imported_variants, is_robustbench, robustbench_file

    cfg = yaml.safe_load((ROOT / "workflow/configs/robustbench_cifar10_l2.yaml").read_text())
    check_config(cfg)
    ds = cfg["datasets"]["cifar10"]
    blocks = {v["name"]: v["checkpoint"] for v in ds["variants"]}
    assert all(is_robustbench(b) and b["name"] == name for name, b in blocks.items())
    assert list(blocks) == list(l2) and set(imported_variants(cfg)) == set(l2)
    for ref in ds["reference"].values():
        assert set(ref) == {"clean_acc", "autoattack_acc", "source"} and 0 <= ref["autoattack_acc"] < ref["clean_acc"]
        assert ref["source"].startswith("RobustBench model_info/cifar10/L2/")
    assert set(ds["reference"]) == set(l2)
    assert robustbench_file(cfg, blocks["Standard"]) == "data/robustbench/cifar10/L2/Standard.pt"


def test_schema_refuses_a_misspelt_zoo_block_naming_the_key():
    from robinterp.config import check_config

    cfg = {
        "datasets": {
            "d": {
                "source": {"kind": "digits"},
                "variants": [
                    {
                        "name": "a",
                        "checkpoint": {
                            "source": "robustbench",
                            "name": "Standard",
                            "dataset": "cifar10",
                            "threat": "L2",
                        },
                    },
                    {"name": "b", "checkpoint": {**stand_in_block("b", "ResNet")}},
                ],
            }
        }
    }
    with pytest.raises(RobinterpError) as e:
        check_config(cfg)
    text = str(e.value)
    assert "variants[0].checkpoint: unknown key(s) ['threat']" in text and "'threat_model' is a required" in text
    assert "variants[1].checkpoint.stand_in.architecture: 'ResNet' is not allowed" in text
