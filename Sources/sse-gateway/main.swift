import GatewayServer
print("hi")
