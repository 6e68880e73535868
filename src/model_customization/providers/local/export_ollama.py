"""The Ollama side of an export: a chat template translated into an Ollama TEMPLATE that renders the same text, and
the Modelfile (FROM the exact base + ADAPTER, or FROM the merged GGUF; TEMPLATE; stop tokens) with the command that
creates the model. Only ChatML templates are translated: the translation is checked by rendering probe
conversations through the tokenizer's own Jinja template."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_customization.errors import UserError

CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"


@dataclass(frozen=True)
class ChatFormat:
    default_system: str | None  # what the template puts first when a conversation has no system message
    template: str  # Ollama TEMPLATE (Go text/template)
    stops: tuple[str, ...]


def chatml_render(messages: list[dict[str, str]], default_system: str | None, *, add_generation_prompt: bool) -> str:
    """ChatML as SmolLM2's (and Qwen's) Jinja templates render plain system/user/assistant conversations."""
    parts = []
    for index, message in enumerate(messages):
        if index == 0 and message["role"] != "system" and default_system is not None:
            parts.append(f"{CHATML_START}system\n{default_system}{CHATML_END}\n")
        parts.append(f"{CHATML_START}{message['role']}\n{message['content']}{CHATML_END}\n")
    if add_generation_prompt:
        parts.append(f"{CHATML_START}assistant\n")
    return "".join(parts)


# Conversations on which a template must agree with chatml_render before we translate it.
_PROBES: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "a\nb"}, {"role": "assistant", "content": "c {{ d }}"}, {"role": "user", "content": " e "}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}],
    [{"role": "assistant", "content": "first"}, {"role": "user", "content": "second"}],
]


def _render_jinja(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def ollama_chat_format(tokenizer: Any, base_name: str) -> ChatFormat:
    """Translate the tokenizer's chat template into an Ollama TEMPLATE that renders the same text.

    Supported: ChatML templates (<|im_start|>role ... <|im_end|>), with or without a default system prompt; we
    recognise one by rendering probe conversations through the real Jinja template and comparing.
    """
    refusal = (
        f"The chat template of {base_name} is not ChatML, the template family the Ollama export can translate "
        "exactly (SmolLM2, Qwen and the like). Export 'gguf-merged' or 'gguf-adapter' and write the Modelfile's "
        "TEMPLATE by hand, checking it against the model's chat template."
    )
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{base_name} has no chat template, so there is nothing to translate into an Ollama TEMPLATE.")
    try:
        rendered = _render_jinja(tokenizer, [{"role": "user", "content": "Hi"}], False)
    except Exception as error:  # noqa: BLE001 - any template failure means we cannot translate it
        raise UserError(refusal) from error
    plain = f"{CHATML_START}user\nHi{CHATML_END}\n"
    head = f"{CHATML_START}system\n"
    if rendered == plain:
        default_system = None
    elif rendered.startswith(head) and rendered.endswith(CHATML_END + "\n" + plain):
        default_system = rendered[len(head): -len(CHATML_END + "\n" + plain)]
    else:
        raise UserError(refusal)
    for messages in _PROBES:
        for generation in (False, True):
            try:
                same = _render_jinja(tokenizer, messages, generation) == chatml_render(messages, default_system, add_generation_prompt=generation)
            except Exception:  # noqa: BLE001
                same = False
            if not same:
                raise UserError(refusal)
    return ChatFormat(default_system, ollama_chatml_template(default_system), (CHATML_END, CHATML_START))


def ollama_chatml_template(default_system: str | None) -> str:
    """The Ollama TEMPLATE for ChatML, byte for byte what the Jinja template renders.

    Ollama hands the template `.Messages` (consecutive messages of one role already joined by a blank line) and
    then generates. A conversation that ends with a user (or system) message gets the assistant generation
    prompt, as with add_generation_prompt=True; one that ends with an assistant message is left open so that
    the model continues it, as with continue_final_message=True. No whitespace-trimming markers: every
    character outside the actions is output.
    """
    head = ""
    if default_system is not None:
        head = f'{{{{ if and (eq $i 0) (ne $m.Role "system") }}}}{CHATML_START}system\n{_go_text(default_system)}{CHATML_END}\n{{{{ end }}}}'
    return (
        '{{ $last := "" }}{{ range $i, $m := .Messages }}' + head
        + CHATML_START + "{{ $m.Role }}\n{{ $m.Content }}"
        + '{{ if or (ne $m.Role "assistant") (gt (len (slice $.Messages $i)) 1) }}' + CHATML_END + "\n{{ end }}"
        + "{{ $last = $m.Role }}{{ end }}"
        + '{{ if ne $last "assistant" }}' + CHATML_START + "assistant\n{{ end }}"
    )


def _go_text(text: str) -> str:
    """Text placed verbatim in a Go template, or as a quoted Go string where it could be misread.

    Text is misread when it holds an action delimiter, the Modelfile's triple quote, or characters the Modelfile
    parser drops (it keeps printable characters, tabs and newlines only).
    """
    if "{{" not in text and '"""' not in text and all(c in "\n\t" or c.isprintable() for c in text):
        return text
    quoted = []
    for char in text:
        if char in '"\\':
            quoted.append("\\" + char)
        elif char == "\n":
            quoted.append("\\n")
        elif char.isprintable() and char != "\t":
            quoted.append(char)
        else:
            quoted.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
    return '{{ "' + "".join(quoted) + '" }}'


def render_modelfile(model_id: str, base_name: str, from_line: str, adapter_line: str | None, chat: ChatFormat, modelfile_path: Path) -> str:
    for value in (from_line, adapter_line or "", str(modelfile_path)):
        if "\n" in value or "\r" in value:
            raise UserError(f"The path {value!r} contains a line break, which a Modelfile cannot hold.")
    lines = [
        f"# Ollama Modelfile for {model_id}: a LoRA fine-tune of {base_name}, exported by model-customization.",
        f"# Create the model with: {ollama_command(model_id, modelfile_path.parent)}",
        f"FROM {from_line}",
    ]
    if adapter_line:
        lines.append(f"ADAPTER {adapter_line}")
    lines.append(f'TEMPLATE """{chat.template}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in chat.stops]
    return "\n".join(lines) + "\n"


def ollama_command(model_id: str, target: Path) -> str:
    return f"ollama create {model_id.lower()} -f {shlex.quote(str(target / 'Modelfile'))}"
