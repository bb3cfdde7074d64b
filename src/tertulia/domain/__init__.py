"""Pure rules of the chat: message kinds, validation, routing, manager commands. No I/O."""
