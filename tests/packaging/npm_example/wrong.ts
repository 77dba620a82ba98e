// What the declarations must refuse: each line is a type error.
import { join } from "hubbub";

export async function wrong(): Promise<void> {
  await join(42, { room: "team" });
  await join("wss://hubbub.example.com/", { userId: "alice" });
  const room = await join("wss://hubbub.example.com/", { room: "team" });
  room.setMicrophone("on");
}
