/** English texts. `{name}` placeholders are filled in; `.one`/`.other` are plural forms. */
export default {
  "action.attach": "Attach a file",
  "action.back_to_lobby": "Back to the lobby",
  "action.cancel_recording": "Discard the recording",
  "action.cancel_reply": "Stop replying",
  "action.cancel_upload": "Cancel the upload",
  "action.close": "Close",
  "action.discard": "Delete",
  "action.dismiss": "Dismiss",
  "action.record": "Record a voice message",
  "action.remove_file": "Remove {name}",
  "action.reply": "Reply",
  "action.reply_to": "Reply to {name}",
  "action.retry": "Try again",
  "action.save_transcript": "Save the conversation as a text file",
  "action.send": "Send",
  "action.send_recording": "Send the voice message",

  "announce.many.one": "{count} new message",
  "announce.many.other": "{count} new messages",
  "announce.message": "{name}: {text}",

  "bot.badge": "bot",

  "composer.drop": "Drop files to send them",
  "composer.form": "Write a message",
  "composer.hint": "Enter sends; Shift+Enter starts a new line.",
  "composer.label": "Message",
  "composer.placeholder": "Write a message…",
  "composer.replying_to": "Replying to {name}",
  "composer.staged": "Files to send",
  "composer.too_long":
    "This message is too long to send: {count} characters, and the limit is {max}. Shorten it or split it.",

  "connection.back": "Connected again.",
  "connection.connecting": "Connecting…",
  "connection.retry": "Retry now",
  "connection.too_many":
    "This conversation is open in too many tabs or windows. Close one to continue here.",
  "connection.unreachable": "The server cannot be reached. Trying again…",
  "connection.waiting": "Connection lost. Reconnecting in {time}…",

  "conversation.untitled": "Conversation",

  "day.today": "Today",
  "day.yesterday": "Yesterday",

  "ended.banner": "This conversation has ended.",
  "ended.banner_by": "This conversation has ended: {name} left.",

  "file.empty": "{name} is empty.",
  "file.limits_unknown": "The file limits could not be loaded. Please try again.",
  "file.not_accepted":
    "{name} cannot be sent: this conversation does not accept this kind of file ({kind}).",
  "file.too_large": "{name} is too large ({size}); the limit is {max}.",
  "file.unavailable": "File unavailable",

  "history.failed": "Earlier messages could not be loaded.",
  "history.older": "Load earlier messages",

  "kind.attachment": "File",
  "kind.audio": "Audio",
  "kind.image": "Photo",
  "kind.video": "Video",
  "kind.voice": "Voice message",

  "language.label": "Language",

  "lobby.bots": "Bots to invite",
  "lobby.failed": "That did not work. Please try again.",
  "lobby.join": "Join",
  "lobby.join_named": "Join {name}",
  "lobby.loading": "Loading…",
  "lobby.name": "Conversation name",
  "lobby.new": "New conversation",
  "lobby.nickname": "Your name",
  "lobby.nickname_missing": "Please enter your name.",
  "lobby.no_bots": "No bots are installed.",
  "lobby.no_rooms": "No open conversations yet.",
  "lobby.optional": "(optional)",
  "lobby.refresh": "Refresh the list",
  "lobby.rejoin": "Open",
  "lobby.rejoin_named": "Open {name} again",
  "lobby.room_people.one": "{count} participant",
  "lobby.room_people.other": "{count} participants",
  "lobby.rooms": "Open conversations",
  "lobby.start": "Start the conversation",
  "lobby.tagline": "Chat with people and bots.",
  "lobby.unreachable": "The server cannot be reached.",
  "lobby.yours": "Your conversations",

  "lost.gone": "That conversation no longer exists.",
  "lost.left": "You are no longer in that conversation.",

  "messages.help": "Arrow keys move between messages, R replies to the message in focus.",
  "messages.label": "Messages",
  "messages.new.one": "{count} new message",
  "messages.new.other": "{count} new messages",

  "options.label": "Options",

  "participants.is_bot": "a bot",
  "participants.offline": "offline",
  "participants.online": "online",
  "participants.online_count.one": "{count} online",
  "participants.online_count.other": "{count} online",
  "participants.title": "Participants",
  "participants.toggle": "Show or hide the participants",
  "participants.working": "working",

  "quote.go": "Go to the quoted message",
  "quote.label": "Quoting",
  "quote.missing": "Show the quoted message",
  "quote.unavailable": "The quoted message is not available.",

  "skip.composer": "Skip to the message box",
  someone: "Someone",

  "status.failed": "Not sent",
  "refused.throttled": "You are sending messages too fast. Wait a moment, then retry.",
  "refused.not_participant": "You are no longer in this conversation.",
  "refused.unavailable": "The server is unavailable just now. Try again shortly.",
  "status.next_upload": "Waiting for the file before it…",
  "status.retrying": "Not taken yet; trying again…",
  "status.sending": "Sending…",
  "status.server_waiting": "Waiting for the server…",
  "status.sent": "Delivered",
  "status.upload_progress": "Upload progress",
  "status.uploading": "Uploading… {percent}%",
  "status.waiting": "Waiting for the connection…",

  "system.created": "Conversation created",
  "system.ended": "The conversation has ended",
  "system.ended_by": "The conversation has ended ({name} left)",
  "system.joined": "{name} joined",
  "system.left": "{name} left",
  "system.name": "System",
  "system.other": "Event: {event}",
  "system.you_joined": "You joined",
  "system.you_left": "You left",

  "transcript.failed": "The conversation could not be saved. Please try again.",
  "transcript.saved": "Saved {time}",

  "upload.failed_status": "The upload failed (HTTP {status}).",
  "upload.forbidden": "You may not send files here.",
  "upload.too_large_server": "The server refused the file: it is larger than {max}.",
  "upload.too_large_server_unsized": "The server refused the file: it is too large.",
  "upload.unreachable": "The upload did not reach the server.",

  "voice.denied": "The microphone is not available.",
  "voice.recording": "Recording",

  "working.many": "{names} are working…",
  "working.one": "{name} is working…",

  you: "You",
};
