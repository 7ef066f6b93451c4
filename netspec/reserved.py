"""Names a layer may not take: its module becomes an attribute of the built network.

A layer named ``forward`` or ``state_dict`` would shadow what PyTorch needs, so these are
refused when a spec is loaded — without importing torch (tests check the lists against the
installed torch: they are torch 2.13's public attributes, and a newer torch may add some).
"""

# attributes of torch.nn.Module: a name inside a block becomes an attribute of its container
MODULE_ATTRIBUTES = frozenset(
    {
        "T_destination",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "compile",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
    }
)

# a top-level name becomes an attribute of the torch.fx.GraphModule itself: its own attributes
# (class and instance) too, and ``self`` of the generated forward code
GRAPH_MODULE_ATTRIBUTES = MODULE_ATTRIBUTES | frozenset(
    {
        "add_submodule",
        "code",
        "delete_all_unused_submodules",
        "delete_submodule",
        "graph",
        "meta",
        "print_readable",
        "recompile",
        "self",
        "shape_env",
        "to_folder",
    }
)
