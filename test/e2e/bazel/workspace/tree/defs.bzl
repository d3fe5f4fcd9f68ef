"""A rule whose single output is a directory, which a remote cache stores as a Tree."""

def _generated_tree_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    ctx.actions.run_shell(
        outputs = [out],
        arguments = [out.path, ctx.attr.message],
        command = """
set -eu
root="$1"
mkdir -p "$root/nested/deeper"
printf '%s\\n' "$2" > "$root/message.txt"
: > "$root/empty.txt"
printf 'first level\\n' > "$root/nested/one.txt"
printf 'second level\\n' > "$root/nested/deeper/two.txt"
printf '#!/bin/sh\\necho runnable\\n' > "$root/nested/run.sh"
chmod +x "$root/nested/run.sh"
""",
        mnemonic = "GenerateTree",
        progress_message = "Generating directory %s" % out.short_path,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

generated_tree = rule(
    implementation = _generated_tree_impl,
    attrs = {"message": attr.string(mandatory = True)},
)
