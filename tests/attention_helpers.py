"Helpers of the attention tests: what an attention module was called with, and its heads in float64, for an explicit softmax computed independently of the capture."

def hook_inputs(module):
    "Record the keyword inputs of every call of `module`; returns (calls, handle)."
    calls = []
    def hook(mod, args, kwargs): calls.append({**dict(zip(("hidden_states", "encoder_hidden_states"), args)), **kwargs})
    return calls, module.register_forward_pre_hook(hook, with_kwargs=True)

def split_heads(x, heads):
    "(batch, tokens, heads * dim) -> (batch, heads, tokens, dim) in float64."
    return x.double().unflatten(-1, (heads, -1)).transpose(1, 2)
