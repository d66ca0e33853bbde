"""Notebook 2 (transformer playground) runs top to bottom in a fresh kernel, and
shows what it claims: the parameter count, clear errors, the masks' effects."""
import re

from notebook_runner import cell_text_outputs, run_notebook


def test_notebook_2_runs():
    nb = run_notebook("2_TransformerPlayground.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    text = cell_text_outputs(nb)
    # the encoder layer's parameter count, and the stack's
    assert "hepml.count_parameters(layer) = 34,960" in text
    assert "parameters: 139,840  (= 4 x 34,960)" in text
    # the transformer output has the decoder's token count
    assert "-> output (128, 4, 16)" in text
    # "try to break it": each mistake printed its clear error
    assert "d_model=10 must be divisible by nhead=4" in text
    assert "argument 'src' has shape (128, 10, 12)" in text
    assert "argument 'src_key_padding_mask' has shape (128, 9)" in text
    assert "argument 'src_key_padding_mask' has shape (10, 128)" in text
    assert "argument 'src_mask' must be a bool or float mask" in text
    assert "argument 'tgt_mask' has shape (5, 5)" in text
    assert "every count equals the formula above" in text
    # padding mask: real outputs unchanged; causal mask: output 1 unchanged, output 2 changed
    assert "largest change of a real token's output:   0" in text
    assert "transformer output change with masked memory:   0" in text
    assert "train() and eval() outputs identical: True" in text
    assert "any NaN in the output? False" in text
    assert re.search(r"output 1: largest change 0\n", text)
    change2 = float(re.search(r"output 2: largest change (\S+)", text).group(1))
    assert change2 > 1e-3
    assert "largest probability on a padded key: 0.0" in text
    # the recorded headline figures
    assert "encoder layer parameters (d_model 16, nhead 4, ff 1024): 34,960" in text
    assert "largest attention probability on a padded key: 0\n" in text
