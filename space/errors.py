"""One-line messages to the user: how an exception is quoted, and how the app refuses bad input to a tool."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """e.g. "401 Client Error: Unauthorized for url: …" from an HTTP error whose text goes on for lines."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def refusal(message: str):
    """Bad input to an MCP tool: Gradio's MCP server answers it as a tool error (isError) with this message.

    No title: with a progress token the server would send "Error: <message>" (gradio/mcp.py,
    _execute_tool_with_progress). Expected input mistakes, so no traceback in the server's log.
    """
    import gradio as gr

    return gr.Error(message, title="", print_exception=False)
