"""What the providers send or leave out by content, for `replay drift` (drift.py's lists).

Owns the facts drift.py's rule needs, each with where it comes from (the official SDKs'
type definitions, the providers' documentation): the fields a provider sends or leaves out
depending on the answer (OPTIONAL_FIELDS), the kinds of block, item, part and delta an answer
may hold (KNOWN_VARIANTS), the Responses API's events of one kind of output
(CONTENT_EVENTS), the events that say a stream failed (STREAM_ERRORS), and the few headers
and keys drift.py treats specially. Data only; a test checks every name against the
installed SDKs.
"""

from __future__ import annotations

ALWAYS_IGNORED = ("[ping]",)
"""Anthropic's streams "may include any number of ping events" (its docs): their presence and
place are timing, not shape."""

REQUEST_ID_HEADERS = ("x-request-id", "request-id")
"""Response headers the official SDKs read; one of them vanishing is drift."""

FREE_FORM_KEYS = frozenset({"input", "args", "arguments", "metadata"})
"""Objects whose keys the model or the caller chooses: their type is compared, not their keys."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


OPTIONAL_FIELDS = (
    # OpenAI chat (openai/types/chat/chat_completion_message.py, chat_completion_chunk.py):
    # `tool_calls` / `function_call` come only when the model calls a tool;
    # `system_fingerprint` is Optional, null or left out depending on the serving backend.
    "choices[].message.tool_calls",
    "choices[].message.function_call",
    "choices[].delta.tool_calls",
    "choices[].delta.function_call",
    "system_fingerprint",
    # Azure OpenAI: the content filter names only the categories it ran or found
    # (protected_material_code, jailbreak...); its offsets come with the asynchronous filter.
    "*content_filter_results.*",
    "choices[].content_filter_offsets",
    # Anthropic (anthropic/types/text_block.py, usage.py): `citations` only when a document
    # was cited, `server_tool_use` only when a server tool (web search) ran.
    "*@text.citations",
    "*usage.server_tool_use",
    # Gemini (google/genai/types.py, every field Optional): proto3 JSON leaves out zero
    # counts (`thoughtsTokenCount` when the model did not think, cache counts without a
    # cache hit); thought parts and signatures, safety, citation and grounding data come
    # by content; a candidate cut while thinking has a `content` with no `parts`.
    "usageMetadata.candidatesTokenCount",
    "usageMetadata.candidatesTokensDetails",
    "usageMetadata.thoughtsTokenCount",
    "usageMetadata.cachedContentTokenCount",
    "usageMetadata.cacheTokensDetails",
    "usageMetadata.toolUsePromptTokenCount",
    "usageMetadata.toolUsePromptTokensDetails",
    "candidates[].content.parts",
    "candidates[].content.parts[]@*.thought",
    "candidates[].content.parts[]@*.thoughtSignature",
    "candidates[].safetyRatings",
    "candidates[].citationMetadata",
    "candidates[].groundingMetadata",
    "candidates[].finishMessage",
    "promptFeedback",
    # Ollama (ollama api/types.go): the metrics and these message fields are `omitempty`
    # (a loaded model has no load time, a cached prompt no prompt evaluation).
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
    "done_reason",
    "context",
    "thinking",
    "message.thinking",
    "message.tool_calls",
    "message.images",
)
"""Key paths (globs, after a stream's `[event].`) a provider sends or leaves out by content:
one side lacking them is not drift."""

_RESPONSES_CONTENT_EVENTS = """
    output_text.delta output_text.done output_text.annotation.added
    content_part.added content_part.done refusal.delta refusal.done
    function_call_arguments.delta function_call_arguments.done
    custom_tool_call_input.delta custom_tool_call_input.done
    reasoning_summary_part.added reasoning_summary_part.done
    reasoning_summary_text.delta reasoning_summary_text.done
    reasoning_text.delta reasoning_text.done
    audio.delta audio.done audio.transcript.delta audio.transcript.done
    web_search_call.in_progress web_search_call.searching web_search_call.completed
    file_search_call.in_progress file_search_call.searching file_search_call.completed
    code_interpreter_call.in_progress code_interpreter_call.interpreting
    code_interpreter_call.completed code_interpreter_call_code.delta
    code_interpreter_call_code.done image_generation_call.in_progress
    image_generation_call.generating image_generation_call.partial_image
    image_generation_call.completed mcp_call.in_progress mcp_call.completed mcp_call.failed
    mcp_call_arguments.delta mcp_call_arguments.done mcp_list_tools.in_progress
    mcp_list_tools.completed mcp_list_tools.failed completed incomplete
"""
CONTENT_EVENTS = frozenset(f"response.{name}" for name in _words(_RESPONSES_CONTENT_EVENTS))
"""OpenAI Responses stream events (openai/types/responses/response_stream_event.py) sent only
for one kind of output item or part (a message's text, a function call, a reasoning
summary, a tool's progress), or at the end of an answer that ran out of tokens
(`incomplete` instead of `completed`): which of them come is the answer's doing."""

STREAM_ERRORS = frozenset({"error", "response.failed"})
"""Events that say the provider failed mid-stream (Anthropic's `overloaded_error`, the
Responses API's `error` and `response.failed`)."""

KNOWN_VARIANTS = _words(
    """
    text thinking redacted_thinking tool_use server_tool_use web_search_tool_result
    web_fetch_tool_result code_execution_tool_result bash_code_execution_tool_result
    text_editor_code_execution_tool_result tool_search_tool_result container_upload
    text_delta input_json_delta citations_delta thinking_delta signature_delta
    message function_call reasoning web_search_call file_search_call computer_call
    code_interpreter_call image_generation_call local_shell_call mcp_call mcp_list_tools
    mcp_approval_request custom_tool_call output_text refusal summary_text reasoning_text
    url_citation file_citation container_file_citation file_path function custom
    functionCall functionResponse inlineData fileData executableCode codeExecutionResult
    """
)
"""The kinds of block, item, part and delta an answer may hold: Anthropic's `ContentBlock`
and content-block deltas (anthropic/types/content_block.py, *_delta.py), OpenAI's Responses
output items, their content and annotations (openai/types/responses/response_output_item.py,
response_output_message.py, response_output_text.py, response_reasoning_item.py), chat tool
calls (`function`, `custom`), and Gemini's part data (GEMINI_PART_DATA)."""

GEMINI_PART_DATA = ("text", "functionCall", "functionResponse", "inlineData", "fileData",
                    "executableCode", "codeExecutionResult")  # fmt: skip
"""google/genai/types.py `Part`: the keys of which one holds a part's data (its variant)."""
