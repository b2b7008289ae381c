"""The Gradio app: page layout (ui), request handling (studio), strings, visitor files."""
