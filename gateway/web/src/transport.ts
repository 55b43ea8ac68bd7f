import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { BacktestService } from "./gen/tapedeck/backtest/v1/backtest_pb";
import { GatewayService } from "./gen/tapedeck/gateway/v1/gateway_pb";
import { LiveService } from "./gen/tapedeck/live/v1/live_pb";
import { StackService } from "./gen/tapedeck/stack/v1/stack_pb";
import { WalletService } from "./gen/tapedeck/wallets/v1/wallets_pb";
import { currentToken } from "./auth";

export interface Clients {
  backtest: Client<typeof BacktestService>;
  wallets: Client<typeof WalletService>;
  live: Client<typeof LiveService>;
  stack: Client<typeof StackService>;
  gateway: Client<typeof GatewayService>;
}

const bearer: Interceptor = (next) => async (request) => {
  const token = currentToken(window.localStorage);
  if (token !== null) request.header.set("authorization", `Bearer ${token}`);
  return next(request);
};

// gRPC-web through Envoy on the page's own origin.
export function createClients(baseUrl: string = window.location.origin): Clients {
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [bearer] });
  return {
    backtest: createClient(BacktestService, transport),
    wallets: createClient(WalletService, transport),
    live: createClient(LiveService, transport),
    stack: createClient(StackService, transport),
    gateway: createClient(GatewayService, transport),
  };
}
