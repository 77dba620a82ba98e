// An app that installed hubbub from npm, with a bundler: what the declarations allow.
import { DEFAULTS, FileTransfer, HubbubError, join, reconnectDelay, type Participant, type Room } from "hubbub";
import { ERROR_CODES } from "hubbub/protocol.js";

export async function call(stream: MediaStream): Promise<Room> {
  let room: Room;
  try {
    room = await join("wss://hubbub.example.com/", {
      room: "team",
      userId: "alice",
      stream,
      token: async () => "a token from the backend",
      limits: { historyPageSize: 20 },
    });
  } catch (error) {
    if (error instanceof HubbubError && error.code === ERROR_CODES.USER_ID_TAKEN) throw error;
    throw error;
  }
  const name: string = room.name;
  const me: string | null = room.userId;
  const people: Map<string, Participant> = room.participants;
  const off: () => void = room.on("participant-joined", ({ participant }) => {
    const who: string = participant.userId;
    console.log(who, participant.displayName, participant.media.audio);
  });
  off();
  room.on("file-offer", ({ transfer }) => {
    const offered: FileTransfer = transfer;
    console.log(offered.name, offered.size);
  });
  const entry = await room.sendChat("hello");
  console.log(name, me, people.size, entry, DEFAULTS.joinTimeoutMs, reconnectDelay(1));
  await room.setMicrophone(false);
  await room.switchCamera({ deviceId: { exact: "camera" } });
  const transfer = room.sendFile("bob", new Blob(["x"]));
  await transfer.done;
  room.leave();
  return room;
}
